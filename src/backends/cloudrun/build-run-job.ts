/**
 * The Cloud Run job the cloudrun backend makes for one job, stated exactly: its id and labels
 * (derived from the job id, so a second create finds the first), its size, and its one container,
 * which reads the job's input from the mounted Secret Manager secret on stdin.
 */
import { resourcesForMachine } from "../k8s/pod-resources.js";
import { jobSecretId, labelValue } from "../gce/gce-names.js";
import type { JobSpec } from "../types.js";
import type { RunJob } from "./run-api.js";

export const CLOUDRUN_LABEL = {
  job: "agent-work-job",
  repo: "agent-work-repo",
  env: "agent-work-env",
  managedBy: "agent-work-managed-by",
  /** Epoch ms of create(): the worker's createdAt, and where its time limit counts from. */
  createdAt: "agent-work-created-at",
  maxSeconds: "agent-work-max-seconds",
} as const;
export const MANAGED_BY = "agent-work";
export const INPUT_DIR = "/run/agent-work";
export const INPUT_FILE = "input.json";
/** The worker's working folder (the clone, the agent's home) on the task's in-memory disk. */
export const WORK_DIR = "/work";

/** CPU and memory of one task, in Cloud Run's units (`2`, `4Gi`). */
export interface RunResources {
  cpu: string;
  memory: string;
}

const JOB_ID = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** The CPU counts Cloud Run offers a task, and the most memory each may have (GiB). */
const CPU_STEPS: [number, number][] = [
  [1, 4],
  [2, 8],
  [4, 16],
  [6, 24],
  [8, 32],
];

export function cloudRunJobId(jobId: string): string {
  const id = `agent-work-${jobId}`;
  if (!JOB_ID.test(id) || jobId === "")
    throw new Error(`job id ${JSON.stringify(jobId)} cannot name a Cloud Run job (lowercase letters, digits and dashes, at most 52)`);
  return id;
}

export const inputSecretId = jobSecretId;

function gibOf(memory: string): number {
  const m = /^(\d+(?:\.\d+)?)(Mi|Gi)$/.exec(memory);
  if (!m) throw new Error(`memory ${JSON.stringify(memory)}: expected Mi or Gi, such as 512Mi or 4Gi`);
  return m[2] === "Gi" ? Number(m[1]) : Number(m[1]) / 1024;
}

function cpusOf(cpu: string): number {
  return cpu.endsWith("m") ? Number(cpu.slice(0, -1)) / 1000 : Number(cpu);
}

/**
 * A task's size for a machine type (the GCE shapes, as the k8s backend reads them), rounded up to
 * a CPU count Cloud Run offers; a size beyond what a task can have is refused, not shrunk.
 */
export function resourcesFor(machineType: string | undefined, defaults: RunResources): RunResources {
  const wanted = resourcesForMachine(machineType, { ...defaults, ephemeralStorage: "0" });
  const gib = gibOf(wanted.memory);
  const step = CPU_STEPS.find(([cpus, maxGib]) => cpus >= cpusOf(wanted.cpu) && maxGib >= gib);
  if (!step) throw new Error(`${machineType ?? "the default size"} (${wanted.cpu} CPU, ${wanted.memory}) is more than a Cloud Run task can have (8 CPU, 32Gi)`);
  return { cpu: String(step[0]), memory: wanted.memory };
}

export interface RunJobSettings {
  image: string;
  serviceAccount: string;
  envLabel: string;
  resources: RunResources;
  nodePath: string;
  workerScript: string;
}

const SHELL_SAFE = /^[A-Za-z0-9_./-]+$/;

export function buildRunJob(job: JobSpec, createdAt: number, s: RunJobSettings): RunJob {
  for (const p of [s.nodePath, s.workerScript]) {
    if (!SHELL_SAFE.test(p)) throw new Error(`${JSON.stringify(p)} cannot be used in the worker container's command (letters, digits, _ . / - only)`);
  }
  return {
    labels: {
      [CLOUDRUN_LABEL.job]: job.jobId,
      [CLOUDRUN_LABEL.repo]: labelValue(job.repoFullName.replace("/", "_")),
      [CLOUDRUN_LABEL.env]: labelValue(s.envLabel),
      [CLOUDRUN_LABEL.managedBy]: MANAGED_BY,
      [CLOUDRUN_LABEL.createdAt]: String(createdAt),
      [CLOUDRUN_LABEL.maxSeconds]: String(job.maxSeconds),
    },
    template: {
      taskCount: 1,
      parallelism: 1,
      template: {
        // One attempt: a retried task would run the agent and push a second time.
        maxRetries: 0,
        timeout: `${Math.max(1, job.maxSeconds)}s`,
        serviceAccount: s.serviceAccount,
        executionEnvironment: "EXECUTION_ENVIRONMENT_GEN2",
        containers: [
          {
            name: "worker",
            image: s.image,
            // `exec`: node is the task's main process, so a cancel's SIGTERM reaches the worker script.
            command: ["/bin/sh", "-c", `exec ${s.nodePath} ${s.workerScript} < ${INPUT_DIR}/${INPUT_FILE}`],
            workingDir: WORK_DIR,
            // Not secret: where the clone and the agent's files go.
            env: [{ name: "HOME", value: WORK_DIR }],
            resources: { limits: { cpu: s.resources.cpu, memory: s.resources.memory } },
            volumeMounts: [{ name: "input", mountPath: INPUT_DIR }],
          },
        ],
        volumes: [{ name: "input", secret: { secret: inputSecretId(job.jobId), items: [{ version: "latest", path: INPUT_FILE, mode: 0o400 }] } }],
      },
    },
  };
}
