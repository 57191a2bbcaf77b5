import type { Database as SqliteDatabase } from "better-sqlite3";

/**
 * insertReceived on the embedded store: the same statements as the Kysely path, prepared once per
 * database and run in one better-sqlite3 transaction (src/store/open-store.ts, onEmbeddedSqlite).
 */
const receivedStatements = new WeakMap<
  SqliteDatabase,
  (row: Record<string, unknown>, event: { at: number; kind: string; data_json: string }) => { created: boolean; row: unknown }
>();

/** The columns are `row`'s keys, read when the statements are prepared (once per database). */
export function insertReceivedSqlite(sqlite: SqliteDatabase, row: Record<string, unknown>) {
  let insert = receivedStatements.get(sqlite);
  if (insert) return insert;
  const columns = Object.keys(row);
  const job = sqlite.prepare(
    `insert into "jobs" (${columns.map((c) => `"${c}"`).join(", ")}) values (${columns.map((c) => `@${c}`).join(", ")}) on conflict ("delivery_id") do nothing returning *`,
  );
  const existing = sqlite.prepare(`select * from "jobs" where "delivery_id" = ?`);
  const jobEvent = sqlite.prepare(`insert into "job_events" ("job_id", "at", "kind", "data_json") values (?, ?, ?, ?)`);
  const transaction = sqlite.transaction((row: Record<string, unknown>, event: { at: number; kind: string; data_json: string }) => {
    const inserted = job.get(row);
    if (!inserted) return { created: false, row: existing.get(row.delivery_id) };
    jobEvent.run(row.id, event.at, event.kind, event.data_json);
    return { created: true, row: inserted };
  });
  // Immediate: the write lock is taken at BEGIN, so a busy lock fails (and is retried) before anything ran.
  insert = transaction.immediate;
  receivedStatements.set(sqlite, insert);
  return insert;
}
