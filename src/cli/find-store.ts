import { existsSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import type { ControllerConfig } from "../config/env.js";

/** The file open-store.ts keeps SQLite in, inside DATA_DIR (test/integration/cli.test.ts opens one made by openStore). */
const SQLITE_FILE = "agent-work.sqlite";

export type FoundStore = { ok: true; where: string } | { ok: false; problem: string };

/**
 * Whether the controller's store is there, without making one: opening a store creates it (a
 * SQLite file, or PostgreSQL tables), so an ops command run in the wrong folder, or with the wrong
 * DATABASE_URL, would otherwise answer from a new empty store as if all were well.
 */
export async function findStore(config: Pick<ControllerConfig, "dataDir" | "databaseUrl">): Promise<FoundStore> {
  if (!config.databaseUrl) {
    const file = path.join(config.dataDir, SQLITE_FILE);
    if (existsSync(file)) return { ok: true, where: `SQLite ${file}` };
    return {
      ok: false,
      problem:
        `no agent-work store at ${file}: run this where the controller runs (the folder with its .env and data/), ` +
        `or set DATA_DIR (or DATABASE_URL) to the controller's`,
    };
  }
  const url = new URL(config.databaseUrl);
  const where = `PostgreSQL ${url.host}${url.pathname}`;
  const client = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const r = await client.query<{ jobs: string | null }>("select to_regclass('jobs')::text as jobs");
    if (r.rows[0]?.jobs) return { ok: true, where };
    return { ok: false, problem: `${where} holds no agent-work tables: check DATABASE_URL (the controller creates them when it first starts)` };
  } catch (err) {
    // The URL is not repeated, and its password is masked should the driver's message quote it.
    const password = decodeURIComponent(url.password);
    const said = err instanceof Error ? err.message : String(err);
    return { ok: false, problem: `cannot reach ${where}: ${password ? said.split(password).join("****") : said}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}
