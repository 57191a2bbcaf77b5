import type { Kysely } from "kysely";

/**
 * The reaper's marks: what it saw on one pass and will act on only if the next pass sees it again
 * (a worker no live job owns; a job whose worker was missing). Keyed by what is marked, so a mark
 * is set once and survives a controller restart between the two passes.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("reaper_marks")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("backend", "text", (c) => c.notNull())
    .addColumn("worker_id", "text")
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("marked_at", "bigint", (c) => c.notNull())
    .addColumn("worker_json", "text")
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("reaper_marks").execute();
}
