import path from "node:path";
import type { Logger } from "pino";
import type { ControllerConfig } from "./config/env.js";
import type { Backend } from "./backends/types.js";
import { local } from "./backends/local/local-backend.js";
import { ssh } from "./backends/ssh/ssh-backend.js";
import { loadSshHosts } from "./backends/ssh/load-ssh-hosts.js";
import { gce } from "./backends/gce/gce-backend.js";
import { gceOptionsFromConfig } from "./backends/gce/options-from-config.js";
import { k8sBackendFromConfig } from "./backends/k8s/k8s-backend.js";
import { SshPool } from "./remote/ssh-pool.js";

/**
 * The backends this controller runs, from its configuration: `local` always; `ssh` when
 * SSH_HOSTS_FILE is set; `gce` when GCE_PROJECT is; `k8s` when K8S_NAMESPACE is. `extra` replaces
 * or adds backends by name (tests use fakes). `close()` ends their pooled connections.
 */
export function buildBackends(
  config: ControllerConfig,
  log: Logger,
  extra: ReadonlyMap<string, Backend> = new Map(),
): { backends: Map<string, Backend>; secrets: string[]; close(): Promise<void> } {
  const closers: (() => Promise<void>)[] = [];
  // Keys the backends hold (ssh hosts' private keys), for the redactor.
  const secrets: string[] = [];
  const backends = new Map<string, Backend>([
    ["local", local.create({ rootDir: path.join(config.dataDir, "workers"), maxConcurrent: config.maxConcurrentJobs })],
  ]);
  if (config.sshHostsFile && !extra.has("ssh")) {
    const hosts = loadSshHosts(config.sshHostsFile);
    secrets.push(...hosts.map((h) => h.privateKey));
    const backend = ssh.create({ hosts, log: log.child({ name: "ssh-backend" }) });
    backends.set("ssh", backend);
    const closable = backend as Backend & { close?: () => Promise<void> };
    if (closable.close) closers.push(() => closable.close!());
  }
  if (config.gce && !extra.has("gce")) {
    const sshPool = new SshPool();
    const backend = gce.create(gceOptionsFromConfig(config.gce, { log: log.child({ name: "gce-backend" }), sshPool }));
    backends.set("gce", backend);
    closers.push(() => backend.close());
  }
  if (config.k8s && !extra.has("k8s")) {
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
