/**
 * The two objects one job makes, as pure functions of the job and the settings, so that a test can
 * state them exactly: the worker Job and the Secret that carries its input.
 *
 * The Job is created suspended: create() runs before the repository token exists, so the pod must
 * not start until run() has put the input Secret in place and resumes the Job. Resuming also
 * (re)starts Kubernetes' clock for `activeDeadlineSeconds`, which run() sets to what is left of
 * the job's limit: the dead-man switch that ends the pod even when the controller is gone.
 *
 * The token never sits in the Job or pod spec: the Secret is mounted read-only into the worker
 * container alone and reaches the worker script through stdin redirection, as on every other
 * backend. The Secret is owned by the Job, so the garbage collector deletes it with the Job.
 */
import type { V1Job, V1Secret } from "@kubernetes/client-node";
import type { JobSpec, RunSpec } from "../types.js";
import { ANNOTATION, INPUT_APP, WORKER_APP, inputSecretName, jobLabels, jobName } from "./k8s-names.js";
import type { PodResources } from "./pod-resources.js";

/** A seccomp or AppArmor profile: the runtime's default, or one installed on the nodes. */
export type NodeProfile = { type: "RuntimeDefault" } | { type: "Localhost"; localhostProfile: string };

/**
 * What a worker pod needs beyond Pod Security "restricted"'s defaults for bubblewrap to build the
 * agent's sandbox inside it (k8s/worker-sandbox/README.md), or a stronger runtime around the pod.
 */
export interface PodIsolation {
  /** `hostUsers: false` and an unmasked /proc in the worker container: bubblewrap's namespaces and fresh /proc. */
  userNamespace: boolean;
  seccompProfile: NodeProfile;
  appArmorProfile?: NodeProfile;
  /** A RuntimeClass such as gVisor's. */
  runtimeClassName?: string;
}

export const DEFAULT_ISOLATION: PodIsolation = { userNamespace: false, seccompProfile: { type: "RuntimeDefault" } };

export interface WorkerPodSettings {
  namespace: string;
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  resources: PodResources;
  ephemeralStorage: string;
  /** Kubernetes deletes a finished Job (and its pods and Secret) this long after it ended. */
  ttlSecondsAfterFinished: number;
  /** Non-root; also the group, and the group that may read the mounted input. */
  runAsUser: number;
  /** How the container starts node and where the worker script is, inside the image. */
  nodePath: string;
  workerScript: string;
  /** Between SIGTERM and SIGKILL when the pod is deleted; the worker script stops at once on SIGTERM. */
  terminationGracePeriodSeconds: number;
  /** Default: RuntimeDefault seccomp, the node's user namespace, no RuntimeClass. */
  isolation?: PodIsolation;
}

export const CONTAINER = "worker";
export const INPUT_DIR = "/run/agent-work";
export const INPUT_FILE = "input.json";
export const WORK_DIR = "/work";

/** Characters a path may have to sit unquoted in the container's shell command. */
const SHELL_SAFE = /^[A-Za-z0-9_./-]+$/;

/** The container's command: the worker script with the mounted input on stdin (never argv, never env). */
export function workerCommand(nodePath: string, workerScript: string): string[] {
  for (const p of [nodePath, workerScript]) {
    if (!SHELL_SAFE.test(p)) throw new Error(`${JSON.stringify(p)} cannot be used in the worker container's command (letters, digits, _ . / - only)`);
  }
  // `exec`: node becomes the container's main process, so pod deletion's SIGTERM reaches the
  // worker script, which stops the agent and reports.
  return ["/bin/sh", "-c", `exec ${nodePath} ${workerScript} < ${INPUT_DIR}/${INPUT_FILE}`];
}

export function buildWorkerJob(job: JobSpec, createdAt: number, s: WorkerPodSettings): V1Job {
  const name = jobName(job.jobId);
  const labels = jobLabels(job.jobId, job.repoFullName, WORKER_APP);
  const amounts = { cpu: s.resources.cpu, memory: s.resources.memory, "ephemeral-storage": s.ephemeralStorage };
  const isolation = s.isolation ?? DEFAULT_ISOLATION;
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name,
      namespace: s.namespace,
      labels,
      annotations: {
        [ANNOTATION.repo]: job.repoFullName,
        [ANNOTATION.createdAt]: String(createdAt),
        [ANNOTATION.maxSeconds]: String(job.maxSeconds),
      },
    },
    spec: {
      suspend: true,
      backoffLimit: 0,
      activeDeadlineSeconds: Math.max(1, Math.ceil(job.maxSeconds)),
      ttlSecondsAfterFinished: s.ttlSecondsAfterFinished,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          ...(isolation.runtimeClassName ? { runtimeClassName: isolation.runtimeClassName } : {}),
          ...(isolation.userNamespace ? { hostUsers: false } : {}),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: s.runAsUser,
            runAsGroup: s.runAsUser,
            fsGroup: s.runAsUser,
            seccompProfile: isolation.seccompProfile,
            ...(isolation.appArmorProfile ? { appArmorProfile: isolation.appArmorProfile } : {}),
          },
          containers: [
            {
              name: CONTAINER,
              image: s.image,
              ...(s.imagePullPolicy ? { imagePullPolicy: s.imagePullPolicy } : {}),
              command: workerCommand(s.nodePath, s.workerScript),
              workingDir: WORK_DIR,
              env: [
                { name: "HOME", value: WORK_DIR },
                { name: "TMPDIR", value: "/tmp" },
              ],
              resources: { requests: amounts, limits: amounts },
              securityContext: {
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                privileged: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
                // In its own user namespace the pod may mount a fresh /proc (bubblewrap's) only when
                // the runtime leaves /proc unmasked; the node's /proc stays out of reach either way.
                ...(isolation.userNamespace ? { procMount: "Unmasked" } : {}),
              },
              volumeMounts: [
                { name: "input", mountPath: INPUT_DIR, readOnly: true },
                { name: "work", mountPath: WORK_DIR },
                { name: "tmp", mountPath: "/tmp" },
              ],
            },
          ],
          volumes: [
            // 0440 with the pod's fsGroup: readable by the worker's group, by nobody else.
            { name: "input", secret: { secretName: inputSecretName(job.jobId), defaultMode: 0o440, optional: false } },
            { name: "work", emptyDir: { sizeLimit: s.ephemeralStorage } },
            { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } },
          ],
        },
      },
    },
  };
}

/** The input Secret, owned by the Job (by uid, so it cannot outlive it or attach to a later one). */
export function buildInputSecret(owner: { jobId: string; repoFullName: string; jobUid: string; namespace: string }, input: RunSpec): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: inputSecretName(owner.jobId),
      namespace: owner.namespace,
      labels: jobLabels(owner.jobId, owner.repoFullName, INPUT_APP),
      ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: jobName(owner.jobId), uid: owner.jobUid }],
    },
    type: "Opaque",
    immutable: true,
    data: { [INPUT_FILE]: Buffer.from(JSON.stringify(input) + "\n", "utf8").toString("base64") },
  };
}
