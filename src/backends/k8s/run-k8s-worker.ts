import type { V1ContainerStateTerminated } from "@kubernetes/client-node";
import { createWorkerOutput } from "../../worker/worker-output.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import type { RunResult, RunSpec, Worker } from "../types.js";
import { CONTAINER, buildInputSecret } from "./build-job.js";
import { KubeCallError } from "./classify-k8s-error.js";
import { followPodLog } from "./follow-pod-log.js";
import type { K8sContext } from "./k8s-context.js";
import { inputSecretName, jobName, podSelector } from "./k8s-names.js";
import { conditionTrue, deleteJob, readJobOrNull, workerOf } from "./k8s-worker-job.js";
import { containerStatus, waitForPod } from "./wait-for-pod.js";

/** The last lines of the worker's log, quoted when it stops without reporting a result. */
const LOG_TAIL = 5;

/** Creates the run's input Secret; one left by a run() that died before starting the Job is replaced. */
async function putInputSecret(
  { api, namespace, call }: K8sContext,
  jobId: string,
  secret: ReturnType<typeof buildInputSecret>,
  signal: AbortSignal,
): Promise<void> {
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

/**
 * run(): the input Secret (the WorkerInput, token included), then the suspended Job resumed with
 * `activeDeadlineSeconds` = what is left of the job's limit, and the pod's log followed into the
 * progress parser. A worker runs once. Stopping the run deletes the Job with its pods.
 */
export async function runK8sWorker(
  ctx: K8sContext,
  worker: Worker,
  spec: RunSpec,
  onEvent: (e: ProgressEvent) => void,
  signal: AbortSignal,
): Promise<RunResult> {
  const { api, namespace, options, now, sleep, pollMs, log, call } = ctx;
  const name = jobName(worker.jobId);
  if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
  const job = await readJobOrNull(ctx, name);
  if (!job) throw new Error(`no k8s worker Job ${namespace}/${name} for job ${worker.jobId}: create() it first`);
  const current = workerOf(namespace, job);
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
    stopping ??= deleteJob(ctx, name, "Background").catch((err: Error) =>
      log?.warn({ jobId: worker.jobId, err: err.message }, "could not delete the stopped worker Job; destroy() will try again"),
    );
    cutTimer = setTimeout(() => stopFollowing.abort(), ((options.terminationGracePeriodSeconds ?? 10) + 20) * 1000);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    try {
      await putInputSecret(ctx, worker.jobId, secret, signal);
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
    const waited = await waitForPod(ctx, worker, signal);
    if ("stopped" in waited) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
    if ("failed" in waited) {
      const failedJob = await readJobOrNull(ctx, name).catch(() => null);
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
    const after = await readJobOrNull(ctx, name).catch(() => null);
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
