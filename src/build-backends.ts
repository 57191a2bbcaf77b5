import type { ControllerConfig } from "./config/env.js";
import type { Backend } from "./backends/types.js";
import { BACKENDS, type BackendsLog } from "./backends/registry.js";
import type { HostKeyMemory } from "./remote/host-key-memory.js";

export type { BackendsLog } from "./backends/registry.js";

/**
 * The backends this controller runs, from its configuration (each backend's switch is in
 * `src/backends/registry.ts`: `local` unless LOCAL_BACKEND=false; `ssh` when SSH_HOSTS_FILE is set;
 * `gce` when GCE_PROJECT is; `k8s` when K8S_NAMESPACE is). `extra` replaces or adds backends by
 * name (tests use fakes). `close()` ends their pooled connections. A backend's code is imported only
 * when it is on.
 */
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
  const backends = new Map<string, Backend>();
  for (const entry of BACKENDS) {
    if (!entry.enabled(config) || extra.has(entry.name)) continue;
    const built = await entry.build(config, { log, ...(hostKeys ? { hostKeys } : {}) });
    backends.set(entry.name, built.backend);
    secrets.push(...(built.secrets ?? []));
    if (built.close) closers.push(built.close);
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
