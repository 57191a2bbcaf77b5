import { mkdirSync } from "node:fs";
import path from "node:path";
import Sqlite from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Migration } from "kysely";
import type { Database } from "./schema.js";
import { startWalCheckpointer, type WalCheckpointer } from "./wal-checkpointer.js";
import { eventLoopSlices } from "./event-loop-slices.js";
import * as m001 from "./migrations/001-jobs.js";
import * as m002 from "./migrations/002-reaper.js";
import * as m003 from "./migrations/003-commands.js";
import * as m004 from "./migrations/004-job-logs.js";
import * as m005 from "./migrations/005-ledger.js";
import * as m006 from "./migrations/006-worker-token.js";
import * as m007deliveries from "./migrations/007-deliveries-recovery.js";
import * as m008 from "./migrations/008-ssh-host-keys.js";
import * as m009 from "./migrations/009-outbox.js";
import * as m010 from "./migrations/010-lease-epoch.js";
import * as m011 from "./migrations/011-ledger-workers.js";

/** Numbered migrations, in order; never edit a released one, add the next number. */
const MIGRATIONS: Record<string, Migration> = {
  "001-jobs": m001,
  "002-reaper": m002,
  "003-commands": m003,
  "004-job-logs": m004,
  "005-ledger": m005,
  "006-worker-token": m006,
  "007-deliveries-recovery": m007deliveries,
  "008-ssh-host-keys": m008,
  "009-outbox": m009,
  "010-lease-epoch": m010,
  "011-ledger-workers": m011,
};

export interface OpenStoreOptions {
  /** Folder for the embedded SQLite file; `:memory:` for a throwaway store. Unused with `databaseUrl`. */
  dataDir: string;
  /** `postgres://…`: the store is this PostgreSQL database (same migrations, same queries). */
  databaseUrl?: string;
  /** Connections in the PostgreSQL pool (default 10). */
  poolSize?: number;
  /**
   * Embedded store only: WAL checkpoints on a thread of their own instead of inside a commit
   * (src/store/wal-checkpointer.ts). The controller turns it on; the CLI and tests need not.
   */
  backgroundCheckpoints?: boolean;
  /** Where a failed checkpoint thread is reported (SQLite then checkpoints in the commits again). */
  onCheckpointError?: (err: Error) => void;
  /** Where a dropped idle PostgreSQL connection is reported (the pool replaces it by itself). */
  onPoolError?: (err: Error) => void;
  /**
   * A second connection to a store another connection in this process opened (the ingress
   * thread's): the schema is already up to date, so no migration runs, and an embedded store's
   * WAL is checkpointed by the first connection's thread, never in this one's commits.
   */
  secondConnection?: boolean;
}

/**
 * Opens the store and brings its schema up to date: PostgreSQL when `databaseUrl` is set (what
 * several replicas share), otherwise the embedded SQLite file in `dataDir`.
 */
export async function openStore(options: OpenStoreOptions): Promise<Kysely<Database>> {
  const db = options.databaseUrl ? await openPostgres(options.databaseUrl, options) : openSqlite(options.dataDir, options);
  if (options.secondConnection) return db;
  try {
    await migrate(db);
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw err;
  }
  return db;
}

function openSqlite(dataDir: string, options: Pick<OpenStoreOptions, "backgroundCheckpoints" | "onCheckpointError" | "secondConnection">): Kysely<Database> {
  let file = ":memory:";
  if (dataDir !== ":memory:") {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    file = path.join(dataDir, "agent-work.sqlite");
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
  if (options.secondConnection) {
    sqlite.pragma("wal_autocheckpoint = 0");
    // Waits for the other connection's write lock are ours (retryWhileBusy), not SQLite's.
    sqlite.pragma("busy_timeout = 0");
  }
  const checkpointer =
    options.backgroundCheckpoints && file !== ":memory:"
      ? startWalCheckpointer(sqlite, file, options.onCheckpointError ? { onError: options.onCheckpointError } : {})
      : undefined;
  // Job work's queries let the event loop (and webhook deliveries) in every millisecond (event-loop-slices.ts).
  const db = new Kysely<Database>({
    dialect: new SqliteDialect({ database: withStatementCache(sqlite, checkpointer, options.secondConnection ?? false) }),
    plugins: [eventLoopSlices(sqlite)],
  });
  embedded.set(db, sqlite);
  if (options.secondConnection) retrying.add(db);
  if (checkpointer) checkpointers.set(db, checkpointer);
  return db;
}

/** The better-sqlite3 handle behind an embedded store's Kysely (none for PostgreSQL). */
const embedded = new WeakMap<Kysely<Database>, Sqlite.Database>();
const checkpointers = new WeakMap<Kysely<Database>, WalCheckpointer>();
/** Second connections: their writes retry a busy lock themselves (retryWhileBusy). */
const retrying = new WeakSet<Kysely<Database>>();

/** Whether `db` is an embedded store's second connection (the webhook thread's: only deliveries write on it). */
export function isEmbeddedSecondConnection(db: Kysely<Database>): boolean {
  return retrying.has(db);
}

/** One Int32 to wait on: Atomics.wait is a sleep of a fraction of a millisecond that no one wakes. */
const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** How long a write waits for another connection's lock before it fails as SQLite's busy_timeout would. */
const BUSY_DEADLINE_MS = 5000;
/** The longest sleep between two tries of a busy write. */
const MAX_BUSY_WAIT_MS = 0.25;

/**
 * Runs `fn` (one statement, or one better-sqlite3 transaction: either leaves nothing behind when it
 * throws) until it does not fail for another connection's write lock. SQLite's own busy handler
 * sleeps 1, 2, 5, 10, 15… ms between tries, so a delivery's insert that met one of the main
 * thread's transactions (held for tens of microseconds) waited 1 ms or more, 8 ms after three
 * tries: the webhook thread's tail. Here the waits start at 50 µs and double up to 0.25 ms: a
 * try is one BEGIN IMMEDIATE (microseconds), and the thread sleeps between tries, so trying often
 * costs little, while a 2 ms ceiling let a lock held for 1.6 ms cost its waiter up to 3.5 ms
 * (1% of deliveries at 100 a second: the p99).
 */
export function retryWhileBusy<T>(fn: () => T): T {
  const started = performance.now();
  let waitMs = 0.05;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if ((err as { code?: unknown }).code !== "SQLITE_BUSY" || performance.now() - started > BUSY_DEADLINE_MS) throw err;
      Atomics.wait(sleeper, 0, 0, waitMs);
      waitMs = Math.min(waitMs * 2, MAX_BUSY_WAIT_MS);
    }
  }
}

/**
 * Stops the store's checkpoint thread and waits until it has closed its connection: call it before
 * `db.destroy()`. (destroy() stops it too, without waiting: the thread's last checkpoint could
 * then still be writing the data folder's files while a caller removes the folder.)
 */
export async function stopBackgroundCheckpoints(db: Kysely<Database>): Promise<void> {
  await checkpointers.get(db)?.stop();
}

/**
 * Runs `fn` on the embedded store's own SQLite handle, synchronously, outside any Kysely
 * transaction; `undefined` on PostgreSQL. For the webhook path's one write: through Kysely it was a
 * builder, a compile and several promise hops for each of its four statements, ~40% of a
 * delivery's CPU (bench/ingest.ts).
 *
 * It does not queue for Kysely's connection when it need not: Kysely hands its one SQLite
 * connection to one query at a time, first come first served, so under load a delivery's write
 * waited behind every job-work query already queued (the webhook path's tail at 100 deliveries a
 * second). `fn` is synchronous, so when no transaction is open on the connection (one Kysely
 * transaction spans several awaits: its BEGIN has run and its COMMIT not yet) nothing can
 * interleave with it and it runs at once; otherwise it waits for the connection, i.e. for that
 * transaction to end.
 */
export async function onEmbeddedSqlite<T>(db: Kysely<Database>, fn: (sqlite: Sqlite.Database) => T): Promise<T | undefined> {
  const sqlite = embedded.get(db);
  if (!sqlite) return undefined;
  const run = retrying.has(db) ? () => retryWhileBusy(() => fn(sqlite)) : () => fn(sqlite);
  if (!sqlite.inTransaction) return run();
  return db.connection().execute(async () => run());
}

/**
 * What Kysely's SQLite driver calls on a statement, each run through retryWhileBusy. Inside a
 * transaction (begun immediate: the lock is already held) a statement never meets a busy lock.
 */
function retryingStatement(statement: Sqlite.Statement) {
  return {
    reader: statement.reader,
    all: (parameters: unknown[]) => retryWhileBusy(() => statement.all(parameters)),
    run: (parameters: unknown[]) => retryWhileBusy(() => statement.run(parameters)),
    iterate: (parameters: unknown[]) => statement.iterate(parameters),
  };
}

/**
 * Kysely opens a transaction with a plain (deferred) `begin`: it takes the write lock only at its
 * first write, and if another connection committed after the transaction's first read, that write
 * fails at once with SQLITE_BUSY (busy_timeout does not apply: the snapshot is stale). The ingress
 * thread writes on a connection of its own, so every transaction here takes the write lock at its
 * start and waits for it (busy_timeout) instead. Transactions here are short and never wait on
 * anything but the store.
 */
const BEGIN_IMMEDIATE = "begin immediate";

/**
 * Kysely prepares every query afresh; the same few hundred SQL texts repeat for the life of the
 * process, and preparing was a tenth of the cost of recording a delivery (bench/ingest.ts profile).
 * A prepared statement is reusable, so each text is prepared once.
 */
function withStatementCache(sqlite: Sqlite.Database, checkpointer: WalCheckpointer | undefined, retryBusy: boolean) {
  const cache = new Map<string, Sqlite.Statement | ReturnType<typeof retryingStatement>>();
  return {
    close: () => {
      // The thread makes a last checkpoint and closes its own connection.
      void checkpointer?.stop();
      sqlite.close();
    },
    prepare: (sql: string) => {
      let statement = cache.get(sql);
      if (!statement) {
        const prepared = sqlite.prepare(sql === "begin" ? BEGIN_IMMEDIATE : sql);
        statement = retryBusy ? retryingStatement(prepared) : prepared;
        if (cache.size < 2000) cache.set(sql, statement);
      }
      return statement;
    },
  };
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

async function openPostgres(databaseUrl: string, options: OpenStoreOptions): Promise<Kysely<Database>> {
  const { default: pg } = await import("pg");
  // pg hands int8 (`bigint` columns, count(*)) and numeric (sums) back as strings, so that values
  // past 2^53 survive; SQLite hands back numbers. Every bigint here is epoch milliseconds or a
  // GitHub id, far below 2^53, so both engines give the code the same numbers. Per pool, not
  // pg.types.setTypeParser: that would change every other pg user in the process.
  const types = {
    getTypeParser: ((oid: number, format?: "text" | "binary") =>
      oid === INT8_OID || oid === NUMERIC_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
  };
  const pool = new pg.Pool({ connectionString: databaseUrl, max: options.poolSize ?? 10, application_name: "agent-work", types });
  // An idle connection that the server drops emits `error` on the pool; unheard, it would crash
  // the controller. The pool discards that connection and opens another on the next query.
  pool.on("error", (err) => options.onPoolError?.(err));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw new Error(
      `cannot reach the PostgreSQL database at ${whereIs(databaseUrl)}: ${err instanceof Error ? err.message : String(err)}; check DATABASE_URL (host, port, user, password, database name) and that the server accepts connections from here`,
    );
  }
  return db;
}

/** Host, port and database of a URL, never its user or password. */
function whereIs(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    return `${url.host || "(local socket)"}${url.pathname}`;
  } catch {
    return "DATABASE_URL";
  }
}

export async function migrate(db: Kysely<any>): Promise<void> {
  // Migrations were numbered by parallel work; a data folder that ran a later number before an
  // earlier one landed must still open, so order is by name but gaps filled later are allowed.
  // On PostgreSQL Kysely runs them in one transaction under an advisory lock, so replicas that
  // start together on a new database migrate it once.
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS }, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    const name = failed?.migrationName ?? "unknown";
    throw new Error(`database migration ${name} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
