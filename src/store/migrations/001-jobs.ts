import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("jobs")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("delivery_id", "text", (c) => c.notNull().unique())
    .addColumn("installation_id", "bigint", (c) => c.notNull())
    .addColumn("repo_id", "bigint", (c) => c.notNull())
    .addColumn("owner", "text", (c) => c.notNull())
    .addColumn("repo", "text", (c) => c.notNull())
    .addColumn("number", "integer", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("trigger", "text", (c) => c.notNull())
    .addColumn("requester", "text", (c) => c.notNull())
    .addColumn("title", "text", (c) => c.notNull())
    .addColumn("body", "text", (c) => c.notNull())
    .addColumn("clone_url", "text", (c) => c.notNull())
    .addColumn("default_branch", "text", (c) => c.notNull())
    .addColumn("instructions", "text")
    .addColumn("config_json", "text")
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("active_key", "text", (c) => c.unique())
    .addColumn("priority", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("backend", "text", (c) => c.notNull())
    .addColumn("base_sha", "text")
    .addColumn("check_run_id", "bigint")
    .addColumn("comment_id", "bigint")
    .addColumn("pr_check_run_id", "bigint")
    .addColumn("branch", "text")
    .addColumn("head_sha", "text")
    .addColumn("pr_number", "integer")
    .addColumn("pr_url", "text")
    .addColumn("worker_json", "text")
    .addColumn("result_json", "text")
    .addColumn("steps_json", "text", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_at", "bigint")
    .addColumn("deadline_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("started_at", "bigint")
    .addColumn("finished_at", "bigint")
    .addColumn("compute_seconds", "double precision")
    .addColumn("cost_usd", "double precision")
    .addColumn("message", "text")
    .execute();
  await db.schema.createIndex("jobs_claim").on("jobs").columns(["state", "priority", "created_at"]).execute();
  await db.schema.createIndex("jobs_issue").on("jobs").columns(["repo_id", "number", "created_at"]).execute();

  const dialect = (db.getExecutor().adapter.constructor.name ?? "").toLowerCase();
  // An append-only log; the id only orders events. SQLite and PostgreSQL spell auto-increment differently.
  const idType = dialect.includes("postgres") ? sql`bigserial primary key` : sql`integer primary key autoincrement`;
  await sql`create table job_events (
    id ${idType},
    job_id text not null references jobs(id),
    at bigint not null,
    kind text not null,
    data_json text
  )`.execute(db);
  await db.schema.createIndex("job_events_job").on("job_events").columns(["job_id", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("job_events").execute();
  await db.schema.dropTable("jobs").execute();
}
