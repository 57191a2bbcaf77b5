import path from "node:path";
import type { ControllerConfig } from "../config/env.js";
import type { HostKeyMemory } from "../remote/host-key-memory.js";
import type { BackendName } from "./backend-names.js";
import type { Backend, BackendModule } from "./types.js";

/** What the backends log through: pino's Logger fits, and so does the ops CLI's quiet one. */
export interface BackendsLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
  child(bindings: Record<string, unknown>): BackendsLog;
}

/** What a backend is built with besides the controller's configuration. */
export interface BackendDeps {
  log: BackendsLog;
  /** Where the ssh backend remembers host keys seen on first use (the store); this process's memory if absent. */
  hostKeys?: HostKeyMemory;
}

/** A backend built for this controller: what it holds that the redactor must know, and how to end its connections. */
export interface BuiltBackend {
  backend: Backend;
  secrets?: string[];
  close?: () => Promise<void>;
}

/**
 * One backend this build knows: when the controller's configuration turns it on, and how to load
 * and build it. Loading is an `import()`: a cloud client is read from disk only when its backend is
 * on (@google-cloud/compute alone adds ~130 MB of protobuf descriptors to the process,
 * @kubernetes/client-node ~70 MB: bench/footprint.ts), and most controllers use neither.
 */
interface BackendEntry {
  name: BackendName;
  enabled(config: ControllerConfig): boolean;
  module(): Promise<BackendModule<any>>;
  build(config: ControllerConfig, deps: BackendDeps): Promise<BuiltBackend>;
}

/**
 * Every backend this build knows, by name, in the order they are built: the one place that lists
 * them. The controller and the ops CLI build through `buildBackends`, the contract tests load a
 * module by name. A new backend folder adds itself here.
 */
export const BACKENDS: readonly BackendEntry[] = [
  {
    name: "local",
    enabled: (config) => config.localBackend !== false,
    module: async () => (await import("./local/local-backend.js")).local,
    async build(config) {
      const { local } = await import("./local/local-backend.js");
      return { backend: local.create({ rootDir: path.join(config.dataDir, "workers"), maxConcurrent: config.maxConcurrentJobs }) };
    },
  },
  {
    name: "ssh",
    enabled: (config) => Boolean(config.sshHostsFile),
    module: async () => (await import("./ssh/ssh-backend.js")).ssh,
    async build(config, { log, hostKeys }) {
      const [{ ssh }, { loadSshHosts }] = await Promise.all([import("./ssh/ssh-backend.js"), import("./ssh/load-ssh-hosts.js")]);
      const hosts = loadSshHosts(config.sshHostsFile!);
      const backend = ssh.create({ hosts, log: log.child({ name: "ssh-backend" }), ...(hostKeys ? { hostKeys } : {}) });
      // The hosts' private keys, for the redactor.
      return { backend, secrets: hosts.map((h) => h.privateKey), close: () => backend.close() };
    },
  },
  {
    name: "gce",
    enabled: (config) => Boolean(config.gce),
    module: async () => (await import("./gce/gce-backend.js")).gce,
    async build(config, { log }) {
      const [{ gce }, { gceOptionsFromConfig }, { SshPool }, { createJobSecrets }, { realClock }] = await Promise.all([
        import("./gce/gce-backend.js"),
        import("./gce/options-from-config.js"),
        import("../remote/ssh-pool.js"),
        import("./gce/job-secrets.js"),
        import("./gce/backoff.js"),
      ]);
      const g = config.gce!;
      const jobSecrets =
        g.tokenDelivery === "secret-manager"
          ? createJobSecrets({ project: g.project, serviceAccount: g.serviceAccount, envLabel: g.envLabel, clock: realClock })
          : undefined;
      const backend = gce.create(
        gceOptionsFromConfig(g, { log: log.child({ name: "gce-backend" }), sshPool: new SshPool(), ...(jobSecrets ? { jobSecrets } : {}) }),
      );
      return { backend, close: () => backend.close() };
    },
  },
  {
    name: "k8s",
    enabled: (config) => Boolean(config.k8s),
    module: async () => (await import("./k8s/k8s-backend.js")).k8s,
    async build(config, { log }) {
      const { k8sBackendFromConfig } = await import("./k8s/k8s-backend.js");
      return { backend: k8sBackendFromConfig(config.k8s!, { log: log.child({ name: "k8s-backend" }) }) };
    },
  },
  {
    name: "cloudrun",
    enabled: (config) => Boolean(config.cloudrun),
    module: async () => (await import("./cloudrun/cloudrun-backend.js")).cloudrun,
    async build(config, { log }) {
      const [{ cloudrun }, { createRunApi }, { createJobSecrets }, { realClock }] = await Promise.all([
        import("./cloudrun/cloudrun-backend.js"),
        import("./cloudrun/run-api.js"),
        import("./gce/job-secrets.js"),
        import("./gce/backoff.js"),
      ]);
      const c = config.cloudrun!;
      const backend = cloudrun.create({
        api: createRunApi({ project: c.project, region: c.region }),
        secrets: createJobSecrets({ project: c.project, serviceAccount: c.serviceAccount, envLabel: c.envLabel, clock: realClock }),
        image: c.image,
        serviceAccount: c.serviceAccount,
        envLabel: c.envLabel,
        defaults: { cpu: c.cpu, memory: c.memory },
        maxJobs: c.maxJobs,
        agentSandbox: c.agentSandbox,
        log: log.child({ name: "cloudrun-backend" }),
      });
      return { backend };
    },
  },
];

/** The backend module of this name, loaded, or undefined for a name this build does not know. */
export async function loadBackendModule(name: string): Promise<BackendModule<any> | undefined> {
  return BACKENDS.find((b) => b.name === name)?.module();
}
