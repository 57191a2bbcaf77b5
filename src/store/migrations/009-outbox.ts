import type { Kysely } from "kysely";

/**
 * The outbox: GitHub effects that must happen exactly once although the process that decided on
 * them may die before, during or after the call (the 👀, a refusal, a command's reply, a revoke
 * and the final status of a job ended outside its run). A row is written in the same transaction
 * as the state change that calls for it; whoever holds its lease delivers it, and a sweep takes
 * the rows a dead process left. `tries` counts deliveries begun: above 1, an earlier one may have
 * reached GitHub, so a comment is looked for by its marker before it is posted.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("outbox")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("job_id", "text")
    .addColumn("installation_id", "bigint", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("payload_json", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("tries", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("last_error", "text")
    .execute();
  await db.schema.createIndex("outbox_pending").on("outbox").columns(["state", "created_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("outbox").execute();
}
