import type { Kysely } from "kysely";

/** Slash commands and check-run buttons: job options, the comment that triggered a job, requests. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("jobs").addColumn("options_json", "text").execute();
  await db.schema.alterTable("jobs").addColumn("trigger_comment_id", "bigint").execute();
  await db.schema.alterTable("jobs").addColumn("context_json", "text").execute();
  await db.schema.alterTable("jobs").addColumn("pr_head_ref", "text").execute();
  await db.schema.alterTable("jobs").addColumn("retry_of", "text").execute();
  await db.schema.alterTable("jobs").addColumn("cancel_requested_by", "text").execute();

  // Commands that are not a new job (stop, retry, status, cost, help, unknown) and button clicks,
  // recorded by the webhook handler and answered by the scheduler, like jobs.
  await db.schema
    .createTable("requests")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("delivery_id", "text", (c) => c.notNull().unique())
    .addColumn("installation_id", "bigint", (c) => c.notNull())
    .addColumn("repo_id", "bigint", (c) => c.notNull())
    .addColumn("owner", "text", (c) => c.notNull())
    .addColumn("repo", "text", (c) => c.notNull())
    .addColumn("number", "integer", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("verb", "text", (c) => c.notNull())
    .addColumn("sender", "text", (c) => c.notNull())
    .addColumn("args_json", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("outcome", "text")
    .execute();
  await db.schema.createIndex("requests_pending").on("requests").columns(["state", "created_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("requests").execute();
  for (const c of ["options_json", "trigger_comment_id", "context_json", "pr_head_ref", "retry_of", "cancel_requested_by"]) {
    await db.schema.alterTable("jobs").dropColumn(c).execute();
  }
}
