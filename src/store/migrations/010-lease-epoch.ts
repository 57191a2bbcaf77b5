import type { Kysely } from "kysely";

/**
 * A counter bumped by every claim of a job. With the lease's owner it fences the holder's writes:
 * a process whose lease expired and was taken (by another replica, or by itself on a later pass)
 * holds an older epoch, and its writes to the job are refused instead of undoing the new holder's.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("jobs")
    .addColumn("lease_epoch", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("jobs").dropColumn("lease_epoch").execute();
}
