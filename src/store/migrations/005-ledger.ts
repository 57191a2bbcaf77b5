import type { Kysely } from "kysely";

/**
 * The cost ledger: one row per job that was allowed to start. A row is written as a reservation
 * (the job's ceiling) in the same transaction that checks the budgets, so two triggers at the same
 * instant cannot both slip under a cap; it is finalised with the billed figure when the job ends.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("ledger")
    .addColumn("job_id", "text", (c) => c.primaryKey())
    .addColumn("repo_id", "bigint", (c) => c.notNull())
    .addColumn("repo_full_name", "text", (c) => c.notNull())
    .addColumn("backend", "text", (c) => c.notNull())
    .addColumn("machine_type", "text")
    .addColumn("region", "text")
    .addColumn("spot", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("disk_gb", "integer")
    .addColumn("disk_type", "text")
    .addColumn("rate_usd_per_hour", "double precision", (c) => c.notNull())
    .addColumn("rate_source", "text", (c) => c.notNull())
    .addColumn("reserved_usd", "double precision", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("ended_at", "bigint")
    .addColumn("billed_seconds", "double precision")
    .addColumn("compute_usd", "double precision")
    .addColumn("disk_usd", "double precision")
    .addColumn("total_usd", "double precision")
    .addColumn("agent_usage_json", "text")
    .execute();
  await db.schema.createIndex("ledger_repo_time").on("ledger").columns(["repo_id", "started_at"]).execute();
  await db.schema.createIndex("ledger_time").on("ledger").columns(["started_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("ledger").execute();
}
