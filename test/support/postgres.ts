import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql, type Kysely } from "kysely";
import pg from "pg";
import { afterAll, afterEach, beforeAll } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import type { Database } from "../../src/store/schema.js";

/**
 * The PostgreSQL that store tests run against: the one on this machine (and on CI, which starts it
 * in .ci/run), trust auth as `postgres`. TEST_POSTGRES_URL points them at another server.
 */
export const POSTGRES_ADMIN_URL = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export type StoreKind = "sqlite" | "postgres";
/** Every store the controller can run on; store suites run once per entry (`describe.each`). */
export const STORE_KINDS: readonly StoreKind[] = ["sqlite", "postgres"];

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${POSTGRES_ADMIN_URL} (${err instanceof Error ? err.message : String(err)}); start it with \`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\` (.ci/run does) or set TEST_POSTGRES_URL`,
    );
  }
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A throwaway database (`aw_test_<random>`), dropped by `drop()` even while connections remain. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `aw_test_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`create database ${name}`));
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => admin((c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

const TABLES = ["job_events", "job_logs", "requests", "ledger", "ledger_workers", "reaper_marks", "ssh_host_keys", "outbox", "jobs"] as const;

export interface TestStores {
  kind: StoreKind;
  /** A new, empty store for this test (one per test: on PostgreSQL it empties the file's database). */
  fresh(): Promise<Kysely<Database>>;
  /** Another connection (pool) to this test's store, as a second replica or the CLI would open it. */
  another(): Promise<Kysely<Database>>;
  /** What `openStore` needs to open this test's store again (e.g. in a child process). */
  location(): { dataDir: string; databaseUrl?: string };
}

/**
 * Stores for a suite run against `kind`; call it inside the suite's `describe`. PostgreSQL: one
 * database per test file, created before its first test and dropped after its last, emptied by
 * each `fresh()`. SQLite: a file in a new temp folder per `fresh()` (a file, not `:memory:`, so
 * `another()` can open it too). Every store a test opened is closed after it.
 */
export function useTestStores(kind: StoreKind): TestStores {
  let database: TestDatabase | undefined;
  let dataDir: string | undefined;
  const opened: Kysely<Database>[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    if (kind === "postgres") database = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.destroy().catch(() => undefined)));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    dataDir = undefined;
  });
  afterAll(async () => {
    await database?.drop();
  });

  const location = () => {
    if (kind === "postgres") return { dataDir: ":unused:", databaseUrl: database!.url };
    if (!dataDir) throw new Error("call fresh() first");
    return { dataDir };
  };
  const open = async () => {
    const db = await openStore(location());
    opened.push(db);
    return db;
  };
  return {
    kind,
    location,
    async fresh() {
      if (kind === "sqlite") {
        dataDir = mkdtempSync(path.join(tmpdir(), "aw-store-"));
        dirs.push(dataDir);
        return open();
      }
      const db = await open();
      await sql`truncate ${sql.join(TABLES.map((t) => sql.table(t)))} restart identity`.execute(db);
      return db;
    },
    another: open,
  };
}
