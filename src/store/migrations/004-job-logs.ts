import { sql, type Kysely } from "kysely";

/** The whole redacted log of each job, for the live log page (the check run shows only a tail). */
export async function up(db: Kysely<any>): Promise<void> {
  const dialect = (db.getExecutor().adapter.constructor.name ?? "").toLowerCase();
  const idType = dialect.includes("postgres") ? sql`bigserial primary key` : sql`integer primary key autoincrement`;
  await sql`create table job_logs (
    id ${idType},
    job_id text not null,
    at bigint not null,
    stream text not null,
    line text not null
  )`.execute(db);
  await db.schema.createIndex("job_logs_job").on("job_logs").columns(["job_id", "id"]).execute();
  await db.schema.createIndex("job_logs_at").on("job_logs").columns(["at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("job_logs").execute();
}
