import type { Kysely } from "kysely";

/**
 * One bill per worker a job had, create to delete. A job that is requeued (its controller died,
 * or a shutdown handed it back) gets a second worker under the same reservation; billing only the
 * last one under-billed every earlier one. The job's ledger row is the sum of these. Keyed by the
 * worker and its creation time, so billing the same worker twice (a retried recovery) is one bill.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("ledger_workers")
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("worker_id", "text", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("ended_at", "bigint", (c) => c.notNull())
    .addColumn("billed_seconds", "double precision", (c) => c.notNull())
    .addColumn("machine_type", "text")
    .addColumn("region", "text")
    .addColumn("spot", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("rate_usd_per_hour", "double precision", (c) => c.notNull())
    .addColumn("compute_usd", "double precision", (c) => c.notNull())
    .addColumn("disk_usd", "double precision", (c) => c.notNull())
    .addColumn("total_usd", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("ledger_workers_pk", ["job_id", "worker_id", "started_at"])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("ledger_workers").execute();
}
