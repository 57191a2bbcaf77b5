import path from "node:path";
import type { ControllerConfig } from "./config/env.js";
import type { Backend } from "./backends/types.js";
import { local } from "./backends/local/local-backend.js";
import type { HostKeyMemory } from "./remote/host-key-memory.js";

/**
 * The backends this controller runs, from its configuration: `local` unless LOCAL_BACKEND=false; `ssh` when
 * SSH_HOSTS_FILE is set; `gce` when GCE_PROJECT is; `k8s` when K8S_NAMESPACE is. `extra` replaces
 * or adds backends by name (tests use fakes). `close()` ends their pooled connections.
 *
 * The cloud clients are imported only when their backend is on: @google-cloud/compute alone adds
 * ~130 MB of protobuf descriptors to the process, @kubernetes/client-node ~70 MB
 * (bench/footprint.ts), and most controllers use neither.
 */
/** What the backends log through: pino's Logger fits, and so does the ops CLI's quiet one. */
export interface BackendsLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
  child(bindings: Record<string, unknown>): BackendsLog;
}

export async function buildBackends(
  config: ControllerConfig,
  log: BackendsLog,
  extra: ReadonlyMap<string, Backend> = new Map(),
  /** Where the ssh backend remembers host keys seen on first use (the store); this process's memory if absent. */
  hostKeys?: HostKeyMemory,
): Promise<{ backends: Map<string, Backend>; secrets: string[]; close(): Promise<void> }> {
  const closers: (() => Promise<void>)[] = [];
  // Keys the backends hold (ssh hosts' private keys), for the redactor.
  const secrets: string[] = [];
  const backends = new Map<string, Backend>(
    config.localBackend !== false ? [["local", local.create({ rootDir: path.join(config.dataDir, "workers"), maxConcurrent: config.maxConcurrentJobs })]] : [],
  );
  if (config.sshHostsFile && !extra.has("ssh")) {
    const [{ ssh }, { loadSshHosts }] = await Promise.all([import("./backends/ssh/ssh-backend.js"), import("./backends/ssh/load-ssh-hosts.js")]);
    const hosts = loadSshHosts(config.sshHostsFile);
    secrets.push(...hosts.map((h) => h.privateKey));
    const backend = ssh.create({ hosts, log: log.child({ name: "ssh-backend" }), ...(hostKeys ? { hostKeys } : {}) });
    backends.set("ssh", backend);
    closers.push(() => backend.close());
  }
  if (config.gce && !extra.has("gce")) {
    const [{ gce }, { gceOptionsFromConfig }, { SshPool }, { createJobSecrets }, { realClock }] = await Promise.all([
      import("./backends/gce/gce-backend.js"),
      import("./backends/gce/options-from-config.js"),
      import("./remote/ssh-pool.js"),
      import("./backends/gce/job-secrets.js"),
      import("./backends/gce/backoff.js"),
    ]);
    const g = config.gce;
    const jobSecrets =
      g.tokenDelivery === "secret-manager" ? createJobSecrets({ project: g.project, serviceAccount: g.serviceAccount, envLabel: g.envLabel, clock: realClock }) : undefined;
    const backend = gce.create(gceOptionsFromConfig(g, { log: log.child({ name: "gce-backend" }), sshPool: new SshPool(), ...(jobSecrets ? { jobSecrets } : {}) }));
    backends.set("gce", backend);
    closers.push(() => backend.close());
  }
  if (config.k8s && !extra.has("k8s")) {
    const { k8sBackendFromConfig } = await import("./backends/k8s/k8s-backend.js");
    backends.set("k8s", k8sBackendFromConfig(config.k8s, { log: log.child({ name: "k8s-backend" }) }));
  }
  for (const [name, backend] of extra) backends.set(name, backend);
  log.info({ backends: [...backends.keys()] }, "backends enabled");
  return {
    backends,
    secrets,
    async close() {
      await Promise.allSettled(closers.map((c) => c()));
    },
  };
}

/** Agent keys kept in Secret Manager (AGENT_ENV_FROM_SECRET_MANAGER), read once at start. */
export async function readAgentSecrets(resources: Record<string, string>): Promise<Record<string, string>> {
  const [{ readSecrets }, { realClock }] = await Promise.all([import("./backends/gce/job-secrets.js"), import("./backends/gce/backoff.js")]);
  return readSecrets(resources, { clock: realClock });
}
