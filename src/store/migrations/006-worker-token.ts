import type { Kysely } from "kysely";

/**
 * The worker token of a job while it may be in use, sealed (AES-256-GCM, src/secrets/seal.ts),
 * never in clear: a controller restarted after a crash opens it to revoke the token the dead one
 * handed out. Cleared once the token is revoked.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("jobs").addColumn("worker_token_sealed", "text").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("jobs").dropColumn("worker_token_sealed").execute();
}
