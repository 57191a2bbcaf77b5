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
import type { Backend, BackendModule, JobSpec, Worker } from "../types.js";
import { buildWorkerJob, type PodIsolation, type WorkerPodSettings } from "./build-job.js";
import { KubeCallError } from "./classify-k8s-error.js";
import { k8sContext, type K8sBackendOptions, type K8sContext } from "./k8s-context.js";
import { createKubeApi, loadKubeConfig } from "./kube-api.js";
import { BACKEND_NAME, WORKER_SELECTOR, jobName } from "./k8s-names.js";
import { deleteJob, readJobOrNull, workerOf } from "./k8s-worker-job.js";
import { resourcesForMachine, type PodResources } from "./pod-resources.js";
import { runK8sWorker } from "./run-k8s-worker.js";

export type { K8sBackendOptions, K8sLog } from "./k8s-context.js";

/** The pod a worker runs in: the options' image, user and isolation, and the job's CPU and memory. */
function podSettings({ namespace, options }: K8sContext, resources: PodResources): WorkerPodSettings {
  return {
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
  };
}

export function createK8sBackend(options: K8sBackendOptions): Backend {
  const ctx = k8sContext(options);
  const { api, namespace, now, sleep, pollMs, log, call } = ctx;
  if ((options.runAsUser ?? 1000) <= 0) throw new Error("the k8s backend never runs worker pods as root: runAsUser must be above 0");

  async function list(): Promise<Worker[]> {
    const jobs = await call(`list Jobs in ${namespace}`, () => api.listJobs(namespace, WORKER_SELECTOR));
    return jobs.flatMap((j) => workerOf(namespace, j) ?? []);
  }

  async function create(job: JobSpec, signal: AbortSignal): Promise<Worker> {
    signal.throwIfAborted();
    const name = jobName(job.jobId);
    const body = buildWorkerJob(job, now(), podSettings(ctx, resourcesForMachine(job.machineType, options.defaults, options.machineResources)));
    try {
      const made = await call(`create Job ${namespace}/${name}`, () => api.createJob(namespace, body), signal);
      log?.info({ jobId: job.jobId, namespace, name }, "k8s worker Job created (suspended until the run starts)");
      return workerOf(namespace, made)!;
    } catch (err) {
      if (!(err instanceof KubeCallError) || err.kind !== "already_exists") throw err;
    }
    // A Job by this name exists: an earlier create for this job (adopt it), or someone else's.
    const existing = await call(`read Job ${namespace}/${name}`, () => api.readJob(namespace, name), signal);
    const worker = workerOf(namespace, existing);
    if (!worker || worker.jobId !== job.jobId)
      throw new Error(`a Job named ${name} exists in ${namespace} but was not made by agent-work for job ${job.jobId}; remove it or use another namespace`);
    if (worker.meta.phase === "deleting") {
      throw new Error(`the Job for job ${job.jobId} is still being deleted; try again once it is gone`);
    }
    log?.info({ jobId: job.jobId, namespace, name }, "k8s worker Job adopted");
    return worker;
  }

  async function destroy(worker: Worker): Promise<void> {
    const name = jobName(worker.jobId);
    await deleteJob(ctx, name, "Foreground");
    // Foreground: the Job stays (with a deletionTimestamp) until its pods are gone, so "gone"
    // means every process of the worker has stopped.
    const deadline = now() + (options.destroyTimeoutSeconds ?? 120) * 1000;
    for (;;) {
      if ((await readJobOrNull(ctx, name)) === null) {
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

  return {
    name: BACKEND_NAME,
    capacity,
    create,
    run: (worker, spec, onEvent, signal) => runK8sWorker(ctx, worker, spec, onEvent, signal),
    destroy,
    list,
  };
}

export const k8s = {
  name: BACKEND_NAME,
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
