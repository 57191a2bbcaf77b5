/**
 * The gce backend's warm pool (GCE_POOL): VMs made ahead of jobs and parked, each taken by one job.
 *
 * A pool VM is made from the same image and body as a job's VM, booted once (SSH answers with the
 * host key its guest agent published, which is then recorded in its `agent-work-host-key` label),
 * then parked: suspended, or stopped. It carries the `agent-work-pool` label and no job label, so
 * list() and the reaper's orphan pass never see it. A job takes one by adding its labels with the
 * label fingerprint as a compare-and-swap, resuming it while that operation runs and using it only
 * once the take has succeeded (pool-take.ts); SSH must show the recorded host key (the guest
 * attributes are not read again: a parked VM keeps its key). From then on it is that job's VM like
 * any other: used once, deleted by destroy(). Housekeeping (maintain(), each reaper pass and after
 * each take) marks an idle VM the same way before deleting it, so a VM is taken or deleted, never
 * both, then fills each entry to its size.
 */
import { randomBytes } from "node:crypto";
import type { BackendMaintenance, JobSpec, Worker } from "../types.js";
import { buildInstanceBody, labelsFor } from "./build-instance.js";
import { classifyGceError } from "./classify-gce-error.js";
import type { GceInstance, ListedInstance } from "./compute-api.js";
import type { GceBackendOptions } from "./gce-backend-options.js";
import { LABEL, hostKeyLabelValue, instanceName, labelValue, poolKey, requestIdFor } from "./gce-names.js";
import { takeFromPool, type PoolTakeContext, type TakenPoolVm } from "./pool-take.js";
import type { ResumedVm } from "./vm-readiness.js";

/** Parked or stopped for good: a pool VM in one of these but not parked the pool's way is deleted. */
const AT_REST = new Set(["STOPPED", "TERMINATED", "SUSPENDED"]);

/** What the pool needs from the backend, passed in rather than reached for. */
export interface WarmPoolContext extends Pick<PoolTakeContext, "compute" | "clock" | "log" | "retry" | "waitFor" | "deleteAndWait"> {
  options: GceBackendOptions;
  /** The list filter for this deployment's VMs (`labels.agent-work-env = "…"`). */
  envFilter: string;
  /** Added to a job's limit for its VM's dead-man switch. */
  graceSeconds: number;
  operationTimeoutMs: number;
  /** RUNNING, SSH answering, and the host key checked: the backend's awaitReady. */
  awaitReady(zone: string, instance: GceInstance, deadline: number, signal: AbortSignal, resumed?: ResumedVm): Promise<Worker>;
}

export interface WarmPool {
  /** Whether the pool can give `job` a VM (one of its entries has the job's machine type). */
  serves(job: JobSpec): boolean;
  /** Every pool VM of this deployment, idle or taken; read alongside the look for a job's own VM. */
  list(): Promise<ListedInstance[]>;
  /** Takes a parked VM for the job (and refills behind it), or undefined: the caller makes one the cold way. */
  take(job: JobSpec, listing: Promise<ListedInstance[]>, deadline: number, signal: AbortSignal): Promise<TakenPoolVm | undefined>;
  /** One housekeeping pass; one at a time in this process (a refill under way is this pass's work). */
  maintain(): Promise<BackendMaintenance>;
  /** Waits for a refill under way. */
  close(): Promise<void>;
}

export function createWarmPool(ctx: WarmPoolContext): WarmPool {
  const { options, compute, clock, log, retry, waitFor, deleteAndWait, awaitReady } = ctx;
  const poolEntries = options.pool?.filter((e) => e.size > 0) ?? [];
  const poolMaxAgeMs = (options.poolMaxAgeSeconds ?? 86_400) * 1000;
  const poolPark = options.poolPark ?? "suspend";
  const PARKED = poolPark === "suspend" ? "SUSPENDED" : "TERMINATED";
  let refilling: Promise<BackendMaintenance> | undefined;
  /** Takes under way in this process: a take hedges only when it is the only one (not in a burst). */
  let taking = 0;
  /** Hedged takes' other VMs on their way back to the pool (or to deletion). */
  const returning = new Set<Promise<void>>();

  function poolMaxRunSeconds(): number {
    // Counted from the VM's creation in the worst case: its whole pool life plus one job.
    return Math.ceil(poolMaxAgeMs / 1000 + (options.poolJobMaxSeconds ?? 3600) + options.bootTimeoutSeconds + ctx.graceSeconds);
  }

  async function poolInstances(): Promise<{ zone: string; instance: GceInstance }[]> {
    const { instances } = await retry(() => compute.listInstances(`${ctx.envFilter} AND labels.${LABEL.pool}:*`));
    return instances;
  }

  const isIdle = (i: GceInstance) => !(i.labels ?? {})[LABEL.job];
  const isMarkedForDeletion = (i: GceInstance) => (i.labels ?? {})[LABEL.deleting] !== undefined;
  const ageMs = (i: GceInstance) => clock.now() - (Date.parse(i.creationTimestamp ?? "") || 0);

  async function operate(zone: string, start: () => Promise<string>, signal?: AbortSignal): Promise<void> {
    await waitFor(zone, await retry(start, signal), signal);
  }

  /** Makes one pool VM for `entry`: insert, boot, check SSH and its host key, park. Deleted on any failure. */
  async function fillOne(entry: { machineType: string; zone: string }): Promise<string> {
    const name = instanceName(`pool-${randomBytes(5).toString("hex")}`);
    const body = buildInstanceBody(options, {
      name,
      jobId: "pool",
      repoFullName: "pool",
      zone: entry.zone,
      provisioningModel: options.spot ? "SPOT" : "STANDARD",
      maxRunSeconds: poolMaxRunSeconds(),
      now: clock.now(),
      machineType: entry.machineType,
    });
    const labels = { [LABEL.env]: labelValue(options.envLabel), [LABEL.pool]: poolKey(entry.machineType, entry.zone) };
    body.labels = labels;
    body.disks![0]!.initializeParams!.labels = labels;
    body.description = `agent-work warm-pool VM (${entry.machineType} in ${entry.zone}); taken by one job, then deleted`;
    const never = new AbortController().signal;
    try {
      await operate(entry.zone, () => compute.insertInstance(entry.zone, body, requestIdFor("pool", name)));
      const instance = await retry(() => compute.getInstance(entry.zone, name));
      if (!instance) throw new Error(`pool VM ${name} is gone right after its insert`);
      const ready = await awaitReady(entry.zone, instance, clock.now() + options.bootTimeoutSeconds * 1000, never);
      // The key just checked goes on the VM as a label, so whichever controller takes it pins it
      // at once instead of reading the guest attributes again after the resume.
      const booted = await retry(() => compute.getInstance(entry.zone, name));
      if (!booted) throw new Error(`pool VM ${name} is gone right after its boot`);
      const recorded = { ...(booted.labels ?? {}), [LABEL.hostKey]: hostKeyLabelValue(ready.meta.hostKeySha256!) };
      await operate(entry.zone, () => compute.setLabels(entry.zone, name, recorded, booted.labelFingerprint ?? ""));
      await operate(entry.zone, () => (poolPark === "suspend" ? compute.suspendInstance(entry.zone, name) : compute.stopInstance(entry.zone, name)));
      log?.info({ vm: name, zone: entry.zone, park: poolPark }, "pool VM ready");
      return name;
    } catch (err) {
      await deleteAndWait(entry.zone, name).catch(() => undefined);
      throw err;
    }
  }

  const poolTake: PoolTakeContext = {
    compute,
    clock,
    log,
    parked: PARKED,
    externalIp: options.externalIp,
    retry,
    waitFor,
    deleteAndWait,
    awaitReady,
    jobLabels: (job) => ({
      ...labelsFor(
        { jobId: job.jobId, repoFullName: job.repoFullName, maxRunSeconds: Math.ceil(job.maxSeconds + ctx.graceSeconds), now: clock.now() },
        options.envLabel,
      ),
      [LABEL.takenAt]: String(Math.floor(clock.now() / 1000)),
    }),
  };

  /** The parked VMs that can take `job`, oldest first (the first to age out); none when the pool cannot be listed. */
  async function poolCandidates(job: JobSpec, listing: Promise<{ zone: string; instance: GceInstance }[]>): Promise<{ zone: string; instance: GceInstance }[]> {
    const keys = poolKeysFor(job);
    try {
      return (await listing)
        .filter(
          (c) =>
            isIdle(c.instance) &&
            !isMarkedForDeletion(c.instance) &&
            String(c.instance.status) === PARKED &&
            keys.has((c.instance.labels ?? {})[LABEL.pool] ?? "") &&
            ageMs(c.instance) < poolMaxAgeMs,
        )
        .sort((a, b) => ageMs(b.instance) - ageMs(a.instance));
    } catch (err) {
      log?.warn({ jobId: job.jobId, err: classifyGceError(err) }, "cannot list the warm pool; making a VM the cold way");
      return [];
    }
  }

  /** The pool labels of the entries that can give `job` a VM (its machine type, any zone). */
  function poolKeysFor(job: JobSpec): Set<string> {
    const machineType = job.machineType ?? options.machineType;
    return new Set(poolEntries.filter((e) => e.machineType === machineType).map((e) => poolKey(e.machineType, e.zone)));
  }

  /** One pool pass at a time in this process: a take's refill and the reaper's pass share it. */
  function poolPass(): Promise<BackendMaintenance> {
    // After the hedged takes' other VMs under way are back (or deleted): until then they carry a
    // job's label, and a pass would fill in their place only to trim the surplus once they are back.
    refilling ??= Promise.all(returning)
      .then(maintainPool)
      .finally(() => (refilling = undefined));
    return refilling;
  }

  /** Refills the pool in the background after a take. */
  function refillSoon(): void {
    poolPass().catch((err) => log?.warn({ err }, "warm pool refill failed; the reaper tries again"));
  }

  /**
   * Why an idle pool VM must go, or undefined while it may stay: the reason in words, and in short
   * for its mark (none when an earlier pass marked it already).
   */
  function whyDelete(instance: GceInstance, configured: ReadonlySet<string>): { mark?: string; reason: string } | undefined {
    const key = (instance.labels ?? {})[LABEL.pool] ?? "";
    const status = String(instance.status);
    const stuckMs = options.bootTimeoutSeconds * 1000 + 2 * ctx.operationTimeoutMs;
    if (isMarkedForDeletion(instance)) return { reason: "marked for deletion by an earlier pass, whose delete did not finish" };
    if (!configured.has(key)) return { mark: "unconfigured", reason: "its machine type and zone are not in the pool any more" };
    if (ageMs(instance) >= poolMaxAgeMs) return { mark: "max-age", reason: `older than the pool's maximum age (${Math.round(poolMaxAgeMs / 3_600_000)} h)` };
    if (status !== PARKED && ageMs(instance) >= stuckMs)
      return { mark: "stuck", reason: `still ${status} long after it was made (a fill that never finished)` };
    if (AT_REST.has(status) && status !== PARKED) return { mark: "wrong-state", reason: `${status}, not ${PARKED}` };
    return undefined;
  }

  /**
   * Marks an idle pool VM for deletion with the label fingerprint of the listing that found it
   * idle, as a take would: false when a job took it (or anything changed its labels) since, and it
   * is left alone. Once marked, no take can succeed with that listing's fingerprint, and a new
   * listing does not offer it.
   */
  async function markForDeletion(zone: string, instance: GceInstance, mark: string): Promise<boolean> {
    const name = instance.name ?? "";
    const labels = { ...(instance.labels ?? {}), [LABEL.deleting]: labelValue(mark) };
    try {
      await operate(zone, () => compute.setLabels(zone, name, labels, instance.labelFingerprint ?? ""));
      return true;
    } catch (err) {
      const c = classifyGceError(err);
      if (c.httpStatus === 412 || c.kind === "not_found") {
        log?.info({ vm: name, zone, err: c.code }, "pool VM changed (taken by a job) or gone since it was listed; not deleting it");
        return false;
      }
      throw err;
    }
  }

  /**
   * Keeps the pool honest, once per reaper pass and after each take: deletes idle VMs past the
   * maximum age, VMs stuck filling past the boot and operation time, VMs whose machine type and
   * zone are no longer configured (the pool drains when disabled), then fills each entry to size.
   * Each is marked first (markForDeletion), so a job that took it meanwhile keeps it.
   */
  async function maintainPool(): Promise<BackendMaintenance> {
    const actions: BackendMaintenance["actions"] = [];
    const configured = new Map(poolEntries.map((e) => [poolKey(e.machineType, e.zone), e]));
    const idle = (await poolInstances()).filter((c) => isIdle(c.instance));
    const kept = new Map<string, number>();
    const keptParked = new Map<string, { zone: string; instance: GceInstance }[]>();
    const configuredKeys = new Set(configured.keys());
    for (const { zone, instance } of idle) {
      const name = instance.name ?? "";
      const why = whyDelete(instance, configuredKeys);
      if (why) {
        try {
          if (why.mark && !(await markForDeletion(zone, instance, why.mark))) continue;
          await deleteAndWait(zone, name);
          actions.push({ kind: "pool-delete", id: name, reason: why.reason });
        } catch (err) {
          actions.push({ kind: "pool-delete", id: name, reason: why.reason, error: err instanceof Error ? err.message : String(err) });
        }
        continue;
      }
      const key = (instance.labels ?? {})[LABEL.pool] ?? "";
      kept.set(key, (kept.get(key) ?? 0) + 1);
      if (String(instance.status) === PARKED) keptParked.set(key, [...(keptParked.get(key) ?? []), { zone, instance }]);
    }
    // More than the size (another controller's refill raced this one's, or the size was lowered):
    // the oldest parked ones go, marked first like any other.
    for (const [key, entry] of configured) {
      const surplus = (kept.get(key) ?? 0) - entry.size;
      const oldestFirst = (keptParked.get(key) ?? []).sort((a, b) => ageMs(b.instance) - ageMs(a.instance));
      for (const { zone, instance } of oldestFirst.slice(0, Math.max(0, surplus))) {
        const name = instance.name ?? "";
        const reason = `more than the pool's ${entry.size} of ${entry.machineType} in ${entry.zone}`;
        try {
          if (!(await markForDeletion(zone, instance, "surplus"))) continue;
          kept.set(key, (kept.get(key) ?? 0) - 1);
          await deleteAndWait(zone, name);
          actions.push({ kind: "pool-delete", id: name, reason });
        } catch (err) {
          actions.push({ kind: "pool-delete", id: name, reason, error: err instanceof Error ? err.message : String(err) });
        }
      }
    }
    const fills: Promise<void>[] = [];
    for (const [key, entry] of configured) {
      const missing = entry.size - (kept.get(key) ?? 0);
      for (let i = 0; i < missing; i++) {
        fills.push(
          fillOne(entry).then(
            (name) =>
              void actions.push({
                kind: "pool-fill",
                id: name,
                reason: `${entry.machineType} in ${entry.zone}: ${entry.size - missing + i} of ${entry.size} ready`,
              }),
            (err: unknown) =>
              void actions.push({
                kind: "pool-fill",
                id: key,
                reason: `${entry.machineType} in ${entry.zone}`,
                error: err instanceof Error ? err.message : String(err),
              }),
          ),
        );
      }
    }
    await Promise.all(fills);
    return { actions };
  }

  /**
   * A take is hedged (poolHedge: two VMs resumed, the first to answer SSH kept) when it is the only
   * one under way here and two VMs are parked: in a burst every job gets a VM of its own instead.
   * The refill (poolPass) waits until the hedge's other VM is parked again, so it is counted, not replaced.
   */
  async function take(job: JobSpec, listing: Promise<ListedInstance[]>, deadline: number, signal: AbortSignal): Promise<TakenPoolVm | undefined> {
    taking += 1;
    try {
      const candidates = await poolCandidates(job, listing);
      const width = options.poolHedge && taking === 1 ? 2 : 1;
      const { taken, settling } = await takeFromPool(poolTake, job, candidates, deadline, signal, width);
      returning.add(settling);
      void settling.finally(() => returning.delete(settling));
      if (taken) refillSoon();
      return taken;
    } finally {
      taking -= 1;
    }
  }

  return {
    serves: (job) => poolKeysFor(job).size > 0,
    list: poolInstances,
    take,
    maintain: poolPass,
    close: async () => {
      await Promise.all(returning);
      await refilling?.catch(() => undefined);
    },
  };
}
