/**
 * The `k8s` backend: one Kubernetes Job per job, in one namespace.
 *
 * create  — a suspended Job named from the job id (agent-work-<id>), labelled `agent-work-*`;
 *           409 AlreadyExists means adopt it (the labels must say it is this job's).
 * run     — the input Secret (the WorkerInput, token included), owned by the Job; then the Job is
 *           resumed with `activeDeadlineSeconds` = what is left of the job's limit; the pod's log
 *           is followed into the progress parser. Stopping the run deletes the Job with its pods.
 * destroy — deletes the Job, Foreground, and waits until it is gone (its pods first; the Secret
 *           goes with it through its owner reference). 404 is success.
 * list    — Jobs by label selector: everything this backend made in the namespace.
 *
 * Errors are classified once (classify-k8s-error.ts): 429/5xx/conflicts are retried with backoff,
 * other 4xx are fatal with the API server's reason. Kubernetes keeps its own dead-man switches:
 * `activeDeadlineSeconds` ends a pod that outlives the job, `ttlSecondsAfterFinished` removes a
 * finished Job nobody deleted, and the reaper removes suspended Jobs that never ran.
 */
import type { V1ContainerStateTerminated, V1Job, V1Pod } from "@kubernetes/client-node";
import { realClock } from "../gce/backoff.js";
import { createWorkerOutput } from "../../worker/worker-output.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import type { Backend, BackendModule, JobSpec, RunResult, RunSpec, Worker } from "../types.js";
import { CONTAINER, buildInputSecret, buildWorkerJob, type PodIsolation, type WorkerPodSettings } from "./build-job.js";
import { KubeCallError, callKube, type RetryOptions } from "./classify-k8s-error.js";
import { followPodLog } from "./follow-pod-log.js";
import { createKubeApi, loadKubeConfig, type KubeApi } from "./kube-api.js";
import { ANNOTATION, LABEL, MANAGED_BY, WORKER_APP, WORKER_SELECTOR, inputSecretName, jobName, podSelector } from "./k8s-names.js";
import { resourcesForMachine, type PodResources, type ResourceDefaults } from "./pod-resources.js";

export interface K8sLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface K8sBackendOptions {
  /** The API; build it with `createKubeApi(loadKubeConfig({ kubeconfig }))`, or see {@link k8sBackendFromConfig}. */
  api: KubeApi;
  namespace: string;
  /** Worker image: node, git and the worker script (and bwrap, unless `agentSandbox` is `none`). */
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** A pod's CPU and memory when the job names no machine type, and every pod's scratch disk. */
  defaults: ResourceDefaults;
  /** Machine types beyond GCE's shapes: name → CPU and memory. */
  machineResources?: Record<string, PodResources>;
  /** Jobs that may exist at once (capacity's max). */
  maxJobs: number;
  /** Default 600. */
  ttlSecondsAfterFinished?: number;
  /** Default 1000. */
  runAsUser?: number;
  /** Inside the image. Defaults: `node`, `/app/worker/agent-work-worker.mjs`. */
  nodePath?: string;
  workerScript?: string;
  /**
   * `bwrap` (default): the run's own sandbox setting goes to the worker, so the agent runs under
   * bubblewrap inside the pod and cannot see the mounted input. `none`: the agent runs without it,
   * as the same user as the worker, and could read the input and its token; the pod is its boundary.
   */
  agentSandbox?: "bwrap" | "none";
  /** Seccomp, AppArmor, user namespace and RuntimeClass of worker pods (default: RuntimeDefault, none of the rest). */
  isolation?: PodIsolation;
  /** Default 10; the worker script stops at once on SIGTERM. */
  terminationGracePeriodSeconds?: number;
  /** How long a pod may take to start (scheduling, image pull) before the run fails (default 300). */
  startTimeoutSeconds?: number;
  /** How long destroy() waits for the Job and its pods to be gone (default 120). */
  destroyTimeoutSeconds?: number;
  /** Between two looks at a starting pod or a Job being deleted (default 1000; tests use less). */
  pollIntervalMs?: number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Tries per API call for transient errors (default 4). */
  apiAttempts?: number;
  log?: K8sLog;
}

const NAME = "k8s";
const LOG_TAIL = 5;
/** Container waiting reasons that will not resolve by waiting. */
const STUCK_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

type JobPhase = "suspended" | "running" | "succeeded" | "failed" | "deleting";

function conditionTrue(job: V1Job, type: string) {
  return job.status?.conditions?.find((c) => c.type === type && c.status === "True");
}

function phaseOf(job: V1Job): JobPhase {
  if (job.metadata?.deletionTimestamp) return "deleting";
  if (conditionTrue(job, "Complete")) return "succeeded";
  if (conditionTrue(job, "Failed")) return "failed";
  return job.spec?.suspend ? "suspended" : "running";
}

export function createK8sBackend(options: K8sBackendOptions): Backend {
  const { api, namespace } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? realClock.sleep;
  const pollMs = options.pollIntervalMs ?? 1000;
  const log = options.log;
  const settings = (resources: PodResources): WorkerPodSettings => ({
    namespace,
    image: options.image,
    ...(options.imagePullPolicy ? { imagePullPolicy: options.imagePullPolicy } : {}),
    resources,
    ephemeralStorage: options.defaults.ephemeralStorage,
    ttlSecondsAfterFinished: options.ttlSecondsAfterFinished ?? 600,
    runAsUser: options.runAsUser ?? 1000,
    nodePath: options.nodePath ?? "node",
    workerScript: options.workerScript ?? "/app/worker/agent-work-worker.mjs",
    terminationGracePeriodSeconds: options.terminationGracePeriodSeconds ?? 10,
    ...(options.isolation ? { isolation: options.isolation } : {}),
  });
  if ((options.runAsUser ?? 1000) <= 0) throw new Error("the k8s backend never runs worker pods as root: runAsUser must be above 0");

  const retry = (signal?: AbortSignal): RetryOptions => ({
    sleep,
    attempts: options.apiAttempts ?? 4,
    ...(signal ? { signal } : {}),
    onRetry: (err, delayMs) => log?.warn({ err: err.message, delayMs }, "Kubernetes API call failed; retrying"),
  });
  const call = <T>(what: string, fn: () => Promise<T>, signal?: AbortSignal) => callKube(what, fn, retry(signal));

  /** The Worker a Job stands for; null for a Job this backend did not make. */
  function workerOf(job: V1Job): Worker | null {
    const labels = job.metadata?.labels ?? {};
    const jobId = labels[LABEL.job];
    if (!jobId || labels[LABEL.managedBy] !== MANAGED_BY || labels[LABEL.name] !== WORKER_APP) return null;
    try {
      if (job.metadata?.name !== jobName(jobId)) return null;
    } catch {
      return null;
    }
    const annotations = job.metadata?.annotations ?? {};
    const created = Number(annotations[ANNOTATION.createdAt]);
    const createdAt = Number.isFinite(created) && created > 0 ? created : (job.metadata?.creationTimestamp?.getTime() ?? 0);
    return {
      id: `${NAME}-${jobId}`,
      backend: NAME,
      jobId,
      createdAt,
      meta: {
        namespace,
        jobName: job.metadata!.name!,
        uid: job.metadata?.uid ?? "",
        repoFullName: annotations[ANNOTATION.repo] ?? "",
        maxSeconds: annotations[ANNOTATION.maxSeconds] ?? "0",
        phase: phaseOf(job),
      },
    };
  }

  async function list(): Promise<Worker[]> {
    const jobs = await call(`list Jobs in ${namespace}`, () => api.listJobs(namespace, WORKER_SELECTOR));
    return jobs.flatMap((j) => workerOf(j) ?? []);
  }

  async function create(job: JobSpec, signal: AbortSignal): Promise<Worker> {
    signal.throwIfAborted();
    const name = jobName(job.jobId);
    const body = buildWorkerJob(job, now(), settings(resourcesForMachine(job.machineType, options.defaults, options.machineResources)));
    try {
      const made = await call(`create Job ${namespace}/${name}`, () => api.createJob(namespace, body), signal);
      log?.info({ jobId: job.jobId, namespace, name }, "k8s worker Job created (suspended until the run starts)");
      return workerOf(made)!;
    } catch (err) {
      if (!(err instanceof KubeCallError) || err.kind !== "already_exists") throw err;
    }
    // A Job by this name exists: an earlier create for this job (adopt it), or someone else's.
    const existing = await call(`read Job ${namespace}/${name}`, () => api.readJob(namespace, name), signal);
    const worker = workerOf(existing);
    if (!worker || worker.jobId !== job.jobId)
      throw new Error(`a Job named ${name} exists in ${namespace} but was not made by agent-work for job ${job.jobId}; remove it or use another namespace`);
    if (worker.meta.phase === "deleting") {
      throw new Error(`the Job for job ${job.jobId} is still being deleted; try again once it is gone`);
    }
    log?.info({ jobId: job.jobId, namespace, name }, "k8s worker Job adopted");
    return worker;
  }

  /** Deletes the Job with its pods; a Job already gone is success. */
  async function deleteJob(name: string, policy: "Foreground" | "Background"): Promise<void> {
    try {
      await call(`delete Job ${namespace}/${name}`, () => api.deleteJob(namespace, name, policy));
    } catch (err) {
      if (err instanceof KubeCallError && err.kind === "not_found") return;
      throw err;
    }
  }

  async function readJobOrNull(name: string): Promise<V1Job | null> {
    try {
      return await call(`read Job ${namespace}/${name}`, () => api.readJob(namespace, name));
    } catch (err) {
      if (err instanceof KubeCallError && err.kind === "not_found") return null;
      throw err;
    }
  }

  async function destroy(worker: Worker): Promise<void> {
    const name = jobName(worker.jobId);
    await deleteJob(name, "Foreground");
    // Foreground: the Job stays (with a deletionTimestamp) until its pods are gone, so "gone"
    // means every process of the worker has stopped.
    const deadline = now() + (options.destroyTimeoutSeconds ?? 120) * 1000;
    for (;;) {
      if ((await readJobOrNull(name)) === null) {
        log?.info({ jobId: worker.jobId, namespace, name }, "k8s worker Job deleted with its pods");
        return;
      }
      if (now() >= deadline)
        throw new Error(
          `the Job ${namespace}/${name} is still being deleted after ${options.destroyTimeoutSeconds ?? 120}s (a finalizer or a pod that will not stop); it will go once its pods do`,
        );
      await sleep(pollMs);
    }
  }

  async function capacity(): Promise<{ max: number; active: number }> {
    const workers = await list();
    // Finished Jobs hold no pod; Jobs being deleted are on their way out.
    return { max: options.maxJobs, active: workers.filter((w) => w.meta.phase === "suspended" || w.meta.phase === "running").length };
  }

  // ---- run -------------------------------------------------------------------------------------

  type PodWait = { pod: V1Pod } | { failed: string } | { stopped: true };

  function containerStatus(pod: V1Pod) {
    return pod.status?.containerStatuses?.find((c) => c.name === CONTAINER);
  }

  /** Waits until the Job's pod has started its container (or cannot), or the run is stopped. */
  async function waitForPod(worker: Worker, signal: AbortSignal): Promise<PodWait> {
    const deadline = now() + (options.startTimeoutSeconds ?? 300) * 1000;
    let last = "no pod yet";
    for (let round = 0; ; round++) {
      if (signal.aborted) return { stopped: true };
      const pods = (await call(`list pods of ${worker.meta.jobName}`, () => api.listPods(namespace, podSelector(worker.jobId)), signal)).filter(
        (p) => !p.metadata?.deletionTimestamp,
      );
      const pod = pods.sort((a, b) => (b.metadata?.creationTimestamp?.getTime() ?? 0) - (a.metadata?.creationTimestamp?.getTime() ?? 0))[0];
      const status = pod ? containerStatus(pod) : undefined;
      if (pod && (status?.state?.running || status?.state?.terminated)) return { pod };
      const waiting = status?.state?.waiting;
      if (waiting?.reason && STUCK_REASONS.has(waiting.reason))
        return { failed: `the worker container cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}` };
      if (pod?.status?.phase === "Failed")
        return { failed: `the worker pod failed before its container ran: ${pod.status.reason ?? ""} ${pod.status.message ?? ""}`.trim() };
      if (pod) {
        const unscheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
        last = unscheduled
          ? `not scheduled: ${unscheduled.message ?? unscheduled.reason ?? ""}`
          : `pod ${pod.metadata?.name} is ${waiting?.reason ?? pod.status?.phase ?? "pending"}`;
      } else if (round % 5 === 4) {
        // No pod for a while: the Job may have failed (deadline) or been deleted under us.
        const job = await readJobOrNull(worker.meta.jobName!);
        if (!job) return { failed: "the worker Job was deleted before its pod started" };
        const failed = conditionTrue(job, "Failed");
        if (failed) return { failed: `the worker Job failed before its pod started: ${failed.reason ?? ""} ${failed.message ?? ""}`.trim() };
      }
      if (now() >= deadline) return { failed: `the worker pod did not start within ${options.startTimeoutSeconds ?? 300}s (${last})` };
      try {
        await sleep(Math.min(pollMs, 250 * 2 ** round), signal);
      } catch {
        return { stopped: true };
      }
    }
  }

  /** Creates the run's input Secret; one left by a run() that died before starting the Job is replaced. */
  async function putInputSecret(jobId: string, secret: ReturnType<typeof buildInputSecret>, signal: AbortSignal): Promise<void> {
    const secretName = inputSecretName(jobId);
    try {
      await call(`create Secret ${namespace}/${secretName}`, () => api.createSecret(namespace, secret), signal);
      return;
    } catch (err) {
      if (!(err instanceof KubeCallError && err.kind === "already_exists")) throw err;
    }
    // It holds an older token, and Secrets this backend makes are immutable: delete, then create.
    await call(`delete Secret ${namespace}/${secretName}`, () => api.deleteSecret(namespace, secretName), signal).catch((e: unknown) => {
      if (!(e instanceof KubeCallError && e.kind === "not_found")) throw e;
    });
    await call(`create Secret ${namespace}/${secretName}`, () => api.createSecret(namespace, secret), signal);
  }

  async function run(worker: Worker, spec: RunSpec, onEvent: (e: ProgressEvent) => void, signal: AbortSignal): Promise<RunResult> {
    const name = jobName(worker.jobId);
    if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
    const job = await readJobOrNull(name);
    if (!job) throw new Error(`no k8s worker Job ${namespace}/${name} for job ${worker.jobId}: create() it first`);
    const current = workerOf(job);
    if (!current) throw new Error(`the Job ${namespace}/${name} was not made by agent-work`);
    if (current.meta.phase !== "suspended") {
      // A worker runs once: its pod has read (or is reading) the input of an earlier run.
      return {
        outcome: "error",
        message: `the worker for job ${worker.jobId} has already been started (${current.meta.phase}); a worker runs once`,
        computeSeconds: 0,
        aborted: false,
      };
    }
    const maxSeconds = Number(current.meta.maxSeconds ?? 0);
    // The dead-man switch counts from create(), like a VM's maxRunDuration counts from boot.
    const remainingMs = maxSeconds > 0 ? current.createdAt + maxSeconds * 1000 - now() : 24 * 3600 * 1000;
    if (remainingMs <= 0) return { outcome: "timed_out", message: `the worker is past its ${maxSeconds}s limit`, computeSeconds: 0, aborted: false };

    // Without bubblewrap the agent shares the pod's network with the worker's proxy: an allow-list
    // would be advice the agent can ignore, and its model key variable a placeholder nothing fills.
    if (options.agentSandbox === "none" && spec.sandbox.kind === "bwrap" && spec.sandbox.egress) {
      return {
        outcome: "error",
        message:
          "network: allowlist cannot be held on this k8s backend: K8S_AGENT_SANDBOX=none runs the agent in the pod's own network, beside the proxy it could bypass; set K8S_AGENT_SANDBOX=bwrap, or ask for network: full",
        computeSeconds: 0,
        aborted: false,
      };
    }
    const input: RunSpec = options.agentSandbox === "none" ? { ...spec, sandbox: { kind: "none" } } : spec;
    const secret = buildInputSecret({ jobId: worker.jobId, repoFullName: current.meta.repoFullName ?? "", jobUid: job.metadata?.uid ?? "", namespace }, input);
    const deadlineSeconds = Math.max(1, Math.ceil(remainingMs / 1000));

    // The pod's log is the worker's stdout (Kubernetes merges stderr into it): the progress protocol.
    const output = createWorkerOutput(spec.token, onEvent, now);
    const { redact } = output;
    const tail: string[] = [];

    // Stopping the run deletes the Job with its pods (Background: the Job object goes at once, the
    // pod gets its SIGTERM, the worker reports and exits, and its log ends the follow). Should the
    // log not end, the follow is cut once the pod's grace period has surely passed.
    const stopFollowing = new AbortController();
    let aborted = false;
    let stopping: Promise<void> | undefined;
    let cutTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      aborted = true;
      stopping ??= deleteJob(name, "Background").catch((err: Error) =>
        log?.warn({ jobId: worker.jobId, err: err.message }, "could not delete the stopped worker Job; destroy() will try again"),
      );
      cutTimer = setTimeout(() => stopFollowing.abort(), ((options.terminationGracePeriodSeconds ?? 10) + 20) * 1000);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      try {
        await putInputSecret(worker.jobId, secret, signal);
        await call(
          `start Job ${namespace}/${name}`,
          () => api.patchJob(namespace, name, { spec: { suspend: false, activeDeadlineSeconds: deadlineSeconds } }),
          signal,
        );
      } catch (err) {
        if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
        throw err;
      }
      log?.info({ jobId: worker.jobId, namespace, name, activeDeadlineSeconds: deadlineSeconds }, "k8s worker Job started");
      const waited = await waitForPod(worker, signal);
      if ("stopped" in waited) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
      if ("failed" in waited) {
        const failedJob = await readJobOrNull(name).catch(() => null);
        if (failedJob && conditionTrue(failedJob, "Failed")?.reason === "DeadlineExceeded") {
          return { outcome: "timed_out", message: `the worker ran past its ${maxSeconds}s limit and Kubernetes stopped it`, computeSeconds: 0, aborted: false };
        }
        return { outcome: "error", message: waited.failed, computeSeconds: 0, aborted: false };
      }
      const podName = waited.pod.metadata!.name!;
      const seenRunning = now();
      let ended: V1ContainerStateTerminated | undefined = containerStatus(waited.pod)?.state?.terminated;
      const followed = await followPodLog(api, {
        namespace,
        pod: podName,
        container: CONTAINER,
        onLine: (line) => {
          tail.push(redact(line));
          if (tail.length > LOG_TAIL) tail.shift();
          output.stdout.push(line + "\n");
        },
        containerRunning: async () => {
          const pods = await call(`list pods of ${name}`, () => api.listPods(namespace, podSelector(worker.jobId)));
          const pod = pods.find((p) => p.metadata?.name === podName);
          ended = (pod && containerStatus(pod)?.state?.terminated) ?? ended;
          return pod !== undefined && !containerStatus(pod)?.state?.terminated;
        },
        signal: stopFollowing.signal,
        sleep,
        reconnectDelayMs: Math.min(pollMs, 500),
        onReconnect: (why) => log?.warn({ jobId: worker.jobId, pod: podName, why }, "following the worker's log again"),
      });
      output.stdout.end();
      const result = output.result();
      if (!followed.complete && !aborted)
        log?.warn({ jobId: worker.jobId, pod: podName, err: followed.lastError }, "the worker's log could not be read to its end");

      // The container's own start and end (one clock, the node's) when Kubernetes reported both.
      const clusterSeconds = ended?.startedAt && ended.finishedAt ? (ended.finishedAt.getTime() - ended.startedAt.getTime()) / 1000 : undefined;
      const computeSeconds = Math.max(0.001, clusterSeconds ?? (now() - seenRunning) / 1000);
      if (aborted) return { ...(result ?? { outcome: "error", message: "stopped" }), computeSeconds, aborted: true };
      const after = await readJobOrNull(name).catch(() => null);
      if (after && conditionTrue(after, "Failed")?.reason === "DeadlineExceeded") {
        return {
          ...result,
          outcome: "timed_out",
          message: `the worker ran past its ${maxSeconds}s limit and Kubernetes stopped it`,
          computeSeconds,
          aborted: false,
        };
      }
      if (result) return { ...result, computeSeconds, aborted: false };
      const how = !after ? "its Job was deleted" : ended ? [ended.reason, `exit code ${ended.exitCode}`].filter(Boolean).join(", ") : "its pod is gone";
      return {
        outcome: "error",
        message: redact(`the worker stopped (${how}) without reporting a result${tail.length ? `: ${tail.join(" | ")}` : ""}`),
        computeSeconds,
        aborted: false,
      };
    } finally {
      signal.removeEventListener("abort", onAbort);
      clearTimeout(cutTimer);
      stopFollowing.abort();
      await stopping;
    }
  }

  return { name: NAME, capacity, create, run, destroy, list };
}

export const k8s = {
  name: NAME,
  create: (opts: K8sBackendOptions): Backend => createK8sBackend(opts),
} satisfies BackendModule<K8sBackendOptions>;

/** The settings the controller's configuration (K8S_* variables) gives the backend. */
export interface K8sBackendConfig {
  namespace: string;
  kubeconfig?: string;
  image: string;
  cpu: string;
  memory: string;
  ephemeralStorage: string;
  maxJobs: number;
  ttlSecondsAfterFinished: number;
  runAsUser: number;
  agentSandbox: "bwrap" | "none";
  isolation?: PodIsolation;
}

/** The backend from `config.k8s`: a kubeconfig file, or the in-cluster service account. */
export function k8sBackendFromConfig(config: K8sBackendConfig, extra: Partial<K8sBackendOptions> = {}): Backend {
  return createK8sBackend({
    api: extra.api ?? createKubeApi(loadKubeConfig(config.kubeconfig !== undefined ? { kubeconfig: config.kubeconfig } : {})),
    namespace: config.namespace,
    image: config.image,
    defaults: { cpu: config.cpu, memory: config.memory, ephemeralStorage: config.ephemeralStorage },
    maxJobs: config.maxJobs,
    ttlSecondsAfterFinished: config.ttlSecondsAfterFinished,
    runAsUser: config.runAsUser,
    agentSandbox: config.agentSandbox,
    ...(config.isolation ? { isolation: config.isolation } : {}),
    ...extra,
  });
}
