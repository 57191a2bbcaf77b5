import { mkdirSync } from "node:fs";
import path from "node:path";
import Sqlite from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect, type Migration } from "kysely";
import type { Database } from "./schema.js";
import * as m001 from "./migrations/001-jobs.js";
import * as m002 from "./migrations/002-reaper.js";
import * as m003 from "./migrations/003-commands.js";
import * as m004 from "./migrations/004-job-logs.js";
import * as m005 from "./migrations/005-ledger.js";
import * as m006 from "./migrations/006-worker-token.js";

/** Numbered migrations, in order; never edit a released one, add the next number. */
const MIGRATIONS: Record<string, Migration> = { "001-jobs": m001, "002-reaper": m002, "003-commands": m003, "004-job-logs": m004, "005-ledger": m005, "006-worker-token": m006 };

export interface OpenStoreOptions {
  /** Folder for the embedded SQLite file; `:memory:` for a throwaway store. */
  dataDir: string;
}

/** Opens the embedded store (SQLite through Kysely) and brings its schema up to date. */
export async function openStore(options: OpenStoreOptions): Promise<Kysely<Database>> {
  let file = ":memory:";
  if (options.dataDir !== ":memory:") {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    file = path.join(options.dataDir, "agent-work.sqlite");
  }
  const sqlite = new Sqlite(file);
  // WAL lets the ops CLI read while the controller writes; busy_timeout rides out short write locks.
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("busy_timeout = 5000");
  // In WAL mode, NORMAL keeps every commit through a crash or kill of the controller (what "no job
  // is lost on a restart" needs) and skips the fsync per commit, which made a burst of deliveries
  // queue behind the disk. Only a power loss of the host can drop the last commits; run on
  // PostgreSQL where that matters.
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrate(db);
  return db;
}

export async function migrate(db: Kysely<any>): Promise<void> {
  // Migrations were numbered by parallel work; a data folder that ran a later number before an
  // earlier one landed must still open, so order is by name but gaps filled later are allowed.
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS }, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    const name = failed?.migrationName ?? "unknown";
    throw new Error(`database migration ${name} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
