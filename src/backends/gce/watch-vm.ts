/**
 * Noticing that a running job's VM is lost, from GCE rather than from a dead SSH session: a VM
 * gone or STOPPING/TERMINATED/SUSPENDED can no longer run its job, and a
 * `compute.instances.preempted` operation for it tells a preemption from a deletion by someone else.
 */
import type { Clock } from "./backoff.js";
import { classifyGceError } from "./classify-gce-error.js";
import type { ComputeApi } from "./compute-api.js";
import type { GceBackendOptions, GceLog } from "./gce-backend-options.js";
import { DEAD_STATES } from "./vm-worker.js";

/** What the watch needs from the backend, passed in rather than reached for. */
export interface VmWatchContext {
  options: Pick<GceBackendOptions, "watchSeconds">;
  compute: ComputeApi;
  clock: Clock;
  log?: GceLog | undefined;
  /** Retries transient failures of one call. */
  retry<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** Why the VM can no longer run its job (preempted, deleted, stopped), or null while it can. */
export async function lossOf(ctx: VmWatchContext, zone: string, name: string): Promise<string | null> {
  const { compute, retry } = ctx;
  const instance = await retry(() => compute.getInstance(zone, name));
  if (instance && !DEAD_STATES.has(String(instance.status))) return null;
  const preempted = await retry(() => compute.wasPreempted(zone, name)).catch(() => false);
  if (preempted) return `the spot VM ${name} was preempted in ${zone}`;
  return instance ? `the VM ${name} is ${String(instance.status)} (stopped outside agent-work)` : `the VM ${name} in ${zone} was deleted outside agent-work`;
}

/** Polls the VM every `watchSeconds` until `until` aborts; resolves with why it was lost, or null. */
export async function watchVm(ctx: VmWatchContext, zone: string, name: string, until: AbortSignal): Promise<string | null> {
  const everyMs = (ctx.options.watchSeconds ?? 15) * 1000;
  for (;;) {
    try {
      await ctx.clock.sleep(everyMs, until);
    } catch {
      return null;
    }
    if (until.aborted) return null;
    const why = await lossOf(ctx, zone, name).catch((err) => {
      ctx.log?.warn({ zone, vm: name, err: classifyGceError(err) }, "could not look at the VM while its job runs; looking again later");
      return null;
    });
    if (why) return why;
  }
}
