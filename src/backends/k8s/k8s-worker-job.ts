/**
 * The worker's Kubernetes Job as the backend reads it: the Worker it stands for (only a Job this
 * backend made), the phase its status says, and the reads and deletes that take "not found" as
 * an answer rather than an error.
 */
import type { V1Job } from "@kubernetes/client-node";
import type { Worker } from "../types.js";
import { KubeCallError } from "./classify-k8s-error.js";
import type { K8sContext } from "./k8s-context.js";
import { ANNOTATION, BACKEND_NAME, LABEL, MANAGED_BY, WORKER_APP, jobName } from "./k8s-names.js";

type JobPhase = "suspended" | "running" | "succeeded" | "failed" | "deleting";

export function conditionTrue(job: V1Job, type: string) {
  return job.status?.conditions?.find((c) => c.type === type && c.status === "True");
}

function phaseOf(job: V1Job): JobPhase {
  if (job.metadata?.deletionTimestamp) return "deleting";
  if (conditionTrue(job, "Complete")) return "succeeded";
  if (conditionTrue(job, "Failed")) return "failed";
  return job.spec?.suspend ? "suspended" : "running";
}

/** The Worker a Job stands for; null for a Job this backend did not make. */
export function workerOf(namespace: string, job: V1Job): Worker | null {
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
    id: `${BACKEND_NAME}-${jobId}`,
    backend: BACKEND_NAME,
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

/** Deletes the Job with its pods; a Job already gone is success. */
export async function deleteJob({ call, api, namespace }: K8sContext, name: string, policy: "Foreground" | "Background"): Promise<void> {
  try {
    await call(`delete Job ${namespace}/${name}`, () => api.deleteJob(namespace, name, policy));
  } catch (err) {
    if (err instanceof KubeCallError && err.kind === "not_found") return;
    throw err;
  }
}

/** The Job by its name, or null once it is gone. */
export async function readJobOrNull({ call, api, namespace }: K8sContext, name: string): Promise<V1Job | null> {
  try {
    return await call(`read Job ${namespace}/${name}`, () => api.readJob(namespace, name));
  } catch (err) {
    if (err instanceof KubeCallError && err.kind === "not_found") return null;
    throw err;
  }
}
