/**
 * Inserting a job's VM: spot in every configured zone, then on-demand if allowed (or, replacing a
 * lost VM, the order `replacementPlacements` gives), each insert with a requestId derived from the
 * job id, so a retried insert returns the first operation instead of a second VM. Stock-outs and
 * quota move to the next placement; anything else stops at once (classify-gce-error.ts decides).
 */
import type { JobSpec, Worker } from "../types.js";
import type { Clock } from "./backoff.js";
import { buildInstanceBody, type ProvisioningModel } from "./build-instance.js";
import { classifyGceError, triesElsewhere } from "./classify-gce-error.js";
import type { ComputeApi, GceInstance } from "./compute-api.js";
import type { GceBackendOptions, GceLog } from "./gce-backend-options.js";
import { GceCreateError } from "./gce-create-error.js";
import { requestIdFor } from "./gce-names.js";
import { waitForOperation } from "./wait-for-operation.js";

/** What the insert needs from the backend, passed in rather than reached for. */
export interface InsertVmContext {
  options: GceBackendOptions;
  compute: ComputeApi;
  clock: Clock;
  log?: GceLog | undefined;
  /** Added to the job's limit and the boot time for the VM's own dead-man switch. */
  graceSeconds: number;
  operationTimeoutMs: number;
  /** Retries transient failures of one call. */
  retry<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** Makes the job's VM named `name` in the first placement that has room; throws GceCreateError when none does. */
export async function insertWithFallback(
  ctx: InsertVmContext,
  job: JobSpec,
  name: string,
  signal: AbortSignal,
): Promise<{ zone: string; instance: GceInstance }> {
  const { options, log } = ctx;
  const attempts: GceCreateError["attempts"] = [];
  for (const { zone, provisioningModel } of placements(options, job.replacing)) {
    signal.throwIfAborted();
    try {
      return { zone, instance: await insertIn(ctx, job, name, zone, provisioningModel, signal) };
    } catch (err) {
      if (err instanceof GceCreateError || signal.aborted) throw err;
      const c = classifyGceError(err);
      if (!triesElsewhere(c.kind)) {
        throw new GceCreateError(`could not create VM ${name} in ${zone} (${provisioningModel}): ${c.code}: ${c.message}`, c.kind === "transient", [
          ...attempts,
          { zone, provisioningModel, kind: c.kind, code: c.code, message: c.message },
        ]);
      }
      attempts.push({ zone, provisioningModel, kind: c.kind, code: c.code, message: c.message });
      log?.warn({ jobId: job.jobId, zone, provisioningModel, code: c.code }, "no VM here; trying the next zone or provisioning model");
    }
  }
  const tried = attempts.map((a) => `${a.zone} ${a.provisioningModel === "SPOT" ? "spot" : "on-demand"}: ${a.code}`).join("; ");
  const allStockOuts = attempts.every((a) => a.kind === "stock_out");
  throw new GceCreateError(
    `no zone could start a ${options.machineType} VM for job ${job.jobId} (${tried}). ` +
      (allStockOuts
        ? "Every zone is out of capacity for now; the job can be retried later, or add zones to GCE_ZONES."
        : "A quota is exhausted: raise it in the Cloud console (IAM & Admin → Quotas), lower GCE_MAX_VMS, or pick a smaller GCE_MACHINE_TYPE."),
    allStockOuts,
    attempts,
  );
}

function placements(options: GceBackendOptions, replacing?: Worker): { zone: string; provisioningModel: ProvisioningModel }[] {
  if (replacing) return replacementPlacements(options, replacing);
  const models: ProvisioningModel[] = options.spot ? (options.onDemandFallback ? ["SPOT", "STANDARD"] : ["SPOT"]) : ["STANDARD"];
  // Spot in every zone before on-demand anywhere: the cheap machine is worth a second zone.
  return models.flatMap((provisioningModel) => options.zones.map((zone) => ({ zone, provisioningModel })));
}

/**
 * Where a job goes again after its VM was lost: a lost spot VM is replaced on-demand (which is
 * not preempted), starting in its own zone, when on-demand is allowed; otherwise (or when the lost
 * VM was on-demand already) the same model in the next zones first, its own zone last.
 */
function replacementPlacements(options: GceBackendOptions, lost: Worker): { zone: string; provisioningModel: ProvisioningModel }[] {
  const lostZone = lost.meta.zone ?? "";
  const wasSpot = lost.meta.provisioningModel === "SPOT";
  const at = options.zones.indexOf(lostZone);
  const rotated = at < 0 ? options.zones : [...options.zones.slice(at + 1), ...options.zones.slice(0, at + 1)];
  if (wasSpot && options.onDemandFallback) {
    const order = at < 0 ? options.zones : [lostZone, ...rotated.filter((z) => z !== lostZone)];
    return order.map((zone) => ({ zone, provisioningModel: "STANDARD" as const }));
  }
  return rotated.map((zone) => ({ zone, provisioningModel: wasSpot ? ("SPOT" as const) : ("STANDARD" as const) }));
}

/** One placement: insert (retrying transient failures with the same requestId) and wait. */
async function insertIn(
  ctx: InsertVmContext,
  job: JobSpec,
  name: string,
  zone: string,
  provisioningModel: ProvisioningModel,
  signal: AbortSignal,
): Promise<GceInstance> {
  const { options, compute, clock, log, retry } = ctx;
  const body = buildInstanceBody(options, {
    name,
    jobId: job.jobId,
    repoFullName: job.repoFullName,
    zone,
    provisioningModel,
    maxRunSeconds: Math.ceil(job.maxSeconds + options.bootTimeoutSeconds + ctx.graceSeconds),
    now: clock.now(),
    ...(job.machineType ? { machineType: job.machineType } : {}),
  });
  // A generation beyond 0 is needed only when GCE replays an old insert (below).
  for (let generation = 0; generation < 3; generation++) {
    const requestId = requestIdFor(job.jobId, zone, provisioningModel, String(generation));
    let operation: string;
    try {
      operation = await retry(() => compute.insertInstance(zone, body, requestId), signal);
    } catch (err) {
      if (classifyGceError(err).kind !== "already_exists") throw err;
      const existing = await retry(() => compute.getInstance(zone, name), signal);
      if (existing) return existing;
      throw err;
    }
    log?.info({ jobId: job.jobId, zone, provisioningModel, operation }, "GCE insert accepted; waiting for the zone operation");
    await waitForOperation(compute, zone, operation, { clock, deadline: clock.now() + ctx.operationTimeoutMs, signal });
    const instance = await retry(() => compute.getInstance(zone, name), signal);
    if (instance) return instance;
    // The operation succeeded but there is no VM: GCE answered with the operation of an earlier
    // insert under this requestId whose VM was deleted since (a recovered job starting again).
    log?.warn({ jobId: job.jobId, zone, requestId }, "insert replayed an earlier request whose VM is gone; inserting again with a new requestId");
  }
  throw new GceCreateError(`GCE keeps answering the insert for ${name} in ${zone} without making a VM`, true);
}
