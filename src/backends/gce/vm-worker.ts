/**
 * A job's VM as the backend hands it out: the Worker made from a GCE instance (list() and a ready
 * VM both), the address SSH reaches it on, and the statuses in which it can no longer run a job.
 */
import type { Worker } from "../types.js";
import type { GceInstance } from "./compute-api.js";
import type { GceBackendOptions } from "./gce-backend-options.js";
import { LABEL, jobIdOfInstance, lastSegment, regionOfZone } from "./gce-names.js";

export const GCE_BACKEND_NAME = "gce";

/** Instance states in which a VM can no longer run the job: a preempted spot VM, one being deleted. */
export const DEAD_STATES = new Set(["STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED"]);

export function metaOf(worker: Worker, key: string): string | undefined {
  const value = worker.meta[key];
  return value === undefined || value === "" ? undefined : value;
}

export function sshHost(options: Pick<GceBackendOptions, "externalIp">, instance: GceInstance): string | undefined {
  const nic = instance.networkInterfaces?.[0];
  if (options.externalIp) return nic?.accessConfigs?.[0]?.natIP ?? undefined;
  return nic?.networkIP ?? undefined;
}

export function workerFrom(options: GceBackendOptions, zone: string, instance: GceInstance, extra: Record<string, string> = {}): Worker {
  const name = instance.name ?? "";
  const labels = instance.labels ?? {};
  const machineType = lastSegment(instance.machineType) || options.machineType;
  const meta: Record<string, string> = {
    project: options.project,
    zone,
    region: regionOfZone(zone),
    instanceName: name,
    machineType,
    provisioningModel: String(instance.scheduling?.provisioningModel ?? "STANDARD"),
    diskGb: String(options.diskGb),
    diskType: options.diskType,
    status: String(instance.status ?? ""),
    ...(labels[LABEL.expiresAt] ? { expiresAt: labels[LABEL.expiresAt] } : {}),
    ...(labels[LABEL.repo] ? { repoLabel: labels[LABEL.repo] } : {}),
    ...extra,
  };
  const host = sshHost(options, instance);
  if (host) meta.host = host;
  return {
    id: name,
    backend: GCE_BACKEND_NAME,
    jobId: labels[LABEL.job] ?? jobIdOfInstance(name) ?? name,
    // A pool VM is the job's from its take (its parked hours are the pool's idle cost); any other from its creation.
    createdAt: Number(labels[LABEL.takenAt] ?? "") * 1000 || Date.parse(instance.creationTimestamp ?? "") || 0,
    meta,
  };
}
