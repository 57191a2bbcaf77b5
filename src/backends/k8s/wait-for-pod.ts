import type { V1Pod } from "@kubernetes/client-node";
import type { Worker } from "../types.js";
import { CONTAINER } from "./build-job.js";
import type { K8sContext } from "./k8s-context.js";
import { podSelector } from "./k8s-names.js";
import { conditionTrue, readJobOrNull } from "./k8s-worker-job.js";

/** Container waiting reasons that will not resolve by waiting. */
const STUCK_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

export type PodWait = { pod: V1Pod } | { failed: string } | { stopped: true };

export function containerStatus(pod: V1Pod) {
  return pod.status?.containerStatuses?.find((c) => c.name === CONTAINER);
}

/** Waits until the Job's pod has started its container (or cannot), or the run is stopped. */
export async function waitForPod(ctx: K8sContext, worker: Worker, signal: AbortSignal): Promise<PodWait> {
  const { api, namespace, options, now, sleep, pollMs, call } = ctx;
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
      const job = await readJobOrNull(ctx, worker.meta.jobName!);
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
