/**
 * The CPU, memory and scratch disk of a worker pod, from the job's machine type.
 *
 * Repository configs name sizes by machine type (`large: { machine: e2-standard-4 }`), the
 * vocabulary of the gce backend. So that one config works on either backend, the GCE shapes are
 * read as what they mean (e2-standard-4: 4 CPUs, 16 GiB); an operator may add names of their own.
 * Requests equal limits: the pod gets Guaranteed QoS, so a busy node neither throttles it below
 * what was promised nor evicts it first, and the cost of a job is what it asked for.
 */

export interface PodResources {
  /** Kubernetes quantities: `2`, `500m`. */
  cpu: string;
  /** `4Gi`, `512Mi`. */
  memory: string;
}

export interface ResourceDefaults extends PodResources {
  /** The clone and the agent's work; also the size limit of the work volume. */
  ephemeralStorage: string;
}

/** GiB of memory per vCPU in the GCE families. */
const GIB_PER_CPU: Record<string, number> = { standard: 4, highmem: 8, highcpu: 1 };
/** GCE's shared-core shapes. */
const SHARED_CORE: Record<string, PodResources> = {
  "e2-micro": { cpu: "250m", memory: "1Gi" },
  "e2-small": { cpu: "500m", memory: "2Gi" },
  "e2-medium": { cpu: "1", memory: "4Gi" },
};

/**
 * Resources for a machine type: the operator's own table first, then GCE's shapes; no machine type
 * means the defaults. An unknown name is refused rather than run at some other size.
 */
export function resourcesForMachine(machineType: string | undefined, defaults: ResourceDefaults, table: Record<string, PodResources> = {}): PodResources {
  if (machineType === undefined || machineType === "") return { cpu: defaults.cpu, memory: defaults.memory };
  const own = table[machineType];
  if (own) return own;
  const shared = SHARED_CORE[machineType];
  if (shared) return shared;
  const shape = /^[a-z][a-z0-9]*-(standard|highmem|highcpu)-(\d{1,3})$/.exec(machineType);
  if (shape) {
    const cpus = Number(shape[2]);
    if (cpus > 0) return { cpu: String(cpus), memory: `${cpus * GIB_PER_CPU[shape[1]!]!}Gi` };
  }
  throw new Error(
    `machine type ${JSON.stringify(machineType)} means nothing to the k8s backend: use a GCE shape such as e2-standard-4 (4 CPUs, 16 GiB), or add it to the backend's machineResources`,
  );
}
