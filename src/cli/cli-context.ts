import path from "node:path";
import type { Kysely } from "kysely";
import type { Backend } from "../backends/types.js";
import type { ControllerConfig } from "../config/env.js";
import { JobStore } from "../store/job-store.js";
import { openStore } from "../store/open-store.js";

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
  let built: Promise<Map<string, Backend>> | undefined;
  const closers: (() => Promise<void>)[] = [];
  const quiet = {
    info: () => {},
    debug: () => {},
    warn: (obj: object, msg: string) => io.err(`warning: ${msg} ${JSON.stringify(obj)}`),
    error: (obj: object, msg: string) => io.err(`error: ${msg} ${JSON.stringify(obj)}`),
  };
  const build = async (): Promise<Map<string, Backend>> => {
    const { local } = await import("../backends/local/local-backend.js");
    const map = new Map<string, Backend>([["local", local.create({ rootDir: path.join(config.dataDir, "workers"), maxConcurrent: config.maxConcurrentJobs })]]);
    if (config.sshHostsFile) {
      const [{ ssh }, { loadSshHosts }] = await Promise.all([import("../backends/ssh/ssh-backend.js"), import("../backends/ssh/load-ssh-hosts.js")]);
      const backend = ssh.create({ hosts: loadSshHosts(config.sshHostsFile), log: quiet });
      closers.push(() => backend.close());
      map.set("ssh", backend);
    }
    if (config.gce) {
      const [{ gce }, { gceOptionsFromConfig }] = await Promise.all([import("../backends/gce/gce-backend.js"), import("../backends/gce/options-from-config.js")]);
      const backend = gce.create(gceOptionsFromConfig(config.gce, { log: quiet }));
      closers.push(() => backend.close());
      map.set("gce", backend);
    }
    if (config.k8s) {
      const { k8sBackendFromConfig } = await import("../backends/k8s/k8s-backend.js");
      map.set("k8s", k8sBackendFromConfig(config.k8s, { log: quiet }));
    }
    return map;
  };
  const backends = () => (built ??= build());
  return {
    context: { config, store, backends, io, now: Date.now },
    async close() {
      await Promise.all(closers.map((c) => c().catch(() => undefined)));
      await db.destroy();
    },
  };
}
