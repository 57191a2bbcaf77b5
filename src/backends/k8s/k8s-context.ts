import { realClock } from "../gce/backoff.js";
import type { PodIsolation } from "./build-job.js";
import { callKube, type RetryOptions } from "./classify-k8s-error.js";
import type { KubeApi } from "./kube-api.js";
import type { PodResources, ResourceDefaults } from "./pod-resources.js";

export interface K8sLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface K8sBackendOptions {
  /** The API; build it with `createKubeApi(loadKubeConfig({ kubeconfig }))`, or see `k8sBackendFromConfig` (k8s-backend.ts). */
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

/** What the backend's operations share: the API and namespace, the options, the clock, and the API call with retries. */
export interface K8sContext {
  api: KubeApi;
  namespace: string;
  options: K8sBackendOptions;
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Between two looks at a starting pod or a Job being deleted. */
  pollMs: number;
  log: K8sLog | undefined;
  /** One API call, transient failures retried with backoff (classify-k8s-error.ts); `what` names it in errors. */
  call: <T>(what: string, fn: () => Promise<T>, signal?: AbortSignal) => Promise<T>;
}

/** The context from the options, with their defaults filled in. */
export function k8sContext(options: K8sBackendOptions): K8sContext {
  const { api, namespace } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? realClock.sleep;
  const pollMs = options.pollIntervalMs ?? 1000;
  const log = options.log;
  const retry = (signal?: AbortSignal): RetryOptions => ({
    sleep,
    attempts: options.apiAttempts ?? 4,
    ...(signal ? { signal } : {}),
    onRetry: (err, delayMs) => log?.warn({ err: err.message, delayMs }, "Kubernetes API call failed; retrying"),
  });
  const call = <T>(what: string, fn: () => Promise<T>, signal?: AbortSignal) => callKube(what, fn, retry(signal));
  return { api, namespace, options, now, sleep, pollMs, log, call };
}
