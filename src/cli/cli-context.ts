import type { Kysely } from "kysely";
import type { Backend } from "../backends/types.js";
import type { ControllerConfig } from "../config/env.js";
import { JobStore } from "../store/job-store.js";
import { openStore } from "../store/open-store.js";
import { SshHostKeyStore } from "../store/ssh-host-keys.js";
import { buildBackends, type BackendsLog } from "../build-backends.js";

export interface CliOutput {
  out(line: string): void;
  err(line: string): void;
}

/** What a command works with: the controller's store and the backends it would enable. */
export interface CliContext {
  config: ControllerConfig;
  store: JobStore;
  /**
   * Built on first use, and imported then: listing or destroying workers may connect to hosts and
   * clouds, and the cloud clients take a second to load, which `jobs` and `show` need not pay.
   */
  backends(): Promise<ReadonlyMap<string, Backend>>;
  io: CliOutput;
  now: () => number;
}

/**
 * Opens the same store the controller uses (DATABASE_URL, or SQLite in DATA_DIR) and describes the
 * backends it enables, from the same configuration. SQLite in WAL mode lets this run beside a live
 * controller; PostgreSQL serves any number of both.
 */
export async function openCliContext(config: ControllerConfig, io: CliOutput): Promise<{ context: CliContext; close(): Promise<void> }> {
  // A small pool: the CLI runs one command at a time beside the controllers.
  const db: Kysely<any> = await openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl, poolSize: 2 });
  const store = new JobStore(db);
  let built: ReturnType<typeof buildBackends> | undefined;
  const quiet: BackendsLog = {
    info: () => {},
    debug: () => {},
    warn: (obj: object, msg: string) => io.err(`warning: ${msg} ${JSON.stringify(obj)}`),
    error: (obj: object, msg: string) => io.err(`error: ${msg} ${JSON.stringify(obj)}`),
    child: () => quiet,
  };
  // The same backends the controller builds from this configuration (cloud clients loaded only when on).
  // The same host keys too: the CLI refuses an ssh host whose key changed, as the controller does.
  const backends = async () => (await (built ??= buildBackends(config, quiet, new Map(), new SshHostKeyStore(db)))).backends;
  return {
    context: { config, store, backends, io, now: Date.now },
    async close() {
      if (built) await (await built).close().catch(() => undefined);
      await db.destroy();
    },
  };
}
