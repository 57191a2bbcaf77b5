import type { Job } from "../jobs/types.js";
import type { Backend } from "../backends/types.js";
import type { PipelineDeps } from "./deps.js";
import { priceJob } from "../cost/price-job.js";
import { formatUsd } from "../cost/estimate.js";
import { jobCeiling } from "./job-ceiling.js";
import { StatusPublisher } from "./status-publisher.js";

/**
 * The backends a job may run on, in order: its own (given at intake: the `--backend` flag, else
 * the repository's `backend`, else the first routing rule that matches, else local), then the
 * controller's BACKEND_ORDER — unless the person asked for a backend by flag, in which case the
 * job never moves. Only enabled backends count.
 */
export function preferenceOrder(job: Pick<Job, "backend" | "options">, controllerOrder: readonly string[], enabled: readonly string[]): string[] {
  const own = job.backend;
  const order = job.options.backend ? [own] : [own, ...controllerOrder.filter((b) => b !== own)];
  return order.filter((b) => enabled.includes(b));
}

export interface Route {
  backend: string;
  /** Backends passed over, with the reason, for the status comment. */
  skipped: { backend: string; why: string }[];
}

export type Routing = { job: Job; route: Route } | { job: Job; waiting: string; noteChanged: boolean };

type RouteDeps = Pick<PipelineDeps, "store" | "backends" | "config" | "log" | "ledger" | "priceTable">;

/** Why a backend cannot take a job now, or undefined when it can: full or down, or at its BACKEND_CAPS. */
async function unavailable(deps: RouteDeps, name: string, backend: Backend, job: Job): Promise<string | undefined> {
  try {
    const { max, active } = await backend.capacity(job.options.sshLabels?.length ? { hostLabels: job.options.sshLabels } : undefined);
    const labels = job.options.sshLabels?.length && name === "ssh" ? `; the job needs hosts labelled ${job.options.sshLabels.join(", ")}` : "";
    if (max <= 0) return `down (no host or slot answers${labels})`;
    if (active >= max) return `full (${active}/${max}${labels})`;
  } catch (err) {
    return `down (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`;
  }
  const cap = deps.config.backendCaps?.[name];
  if (!cap) return undefined;
  // Looked at here to move the job along BACKEND_ORDER or keep it waiting with the reason; the
  // reservation at the start checks the same caps again in one step with the budgets.
  const load = await deps.ledger.backendLoad(name);
  if (cap.jobs !== undefined && load.jobs >= cap.jobs) return `at its cap of ${cap.jobs} job${cap.jobs === 1 ? "" : "s"} at once (BACKEND_CAPS)`;
  if (cap.usdPerHour !== undefined && job.config) {
    let need = 0;
    try {
      need = jobCeiling(deps, job.config, priceJob({ backend: name, machine: job.options.machine }, deps.config.gce, deps.priceTable)).ceilingUsd;
    } catch {
      // Not priceable here (gce without its configuration): the start refuses it with the reason.
    }
    if (need > 0 && load.spentThisHourUsd + need > cap.usdPerHour) {
      const resets = new Date(load.hourResetsAt).toISOString().slice(11, 16);
      return `at its cap of ${formatUsd(cap.usdPerHour)} an hour (BACKEND_CAPS: ${formatUsd(load.spentThisHourUsd)} spent or reserved this hour + up to ${formatUsd(need)} for this job; it resets at ${resets} UTC)`;
    }
  }
  return undefined;
}

/**
 * Picks where a claimed job runs: the first backend in its preference order with room. Moves the
 * job there (written before anything is started on it) and notes why in its options, which the
 * status comment shows. When every choice is full, down or at its cap the job stays queued, and
 * why is written on it (`noteChanged` when that differs from what the status comment says now).
 */
export async function routeJob(deps: RouteDeps, job: Job): Promise<Routing> {
  const order = preferenceOrder(job, deps.config.backendOrder, [...deps.backends.keys()]);
  const skipped: Route["skipped"] = [];
  for (const name of order) {
    const why = await unavailable(deps, name, deps.backends.get(name)!, job);
    if (why) {
      skipped.push({ backend: name, why });
      continue;
    }
    const { waiting: _waited, ...options } = job.options;
    if (name === job.backend) {
      const ready = job.options.waiting === undefined ? job : await deps.store.update(job.id, { options });
      return { job: ready, route: { backend: name, skipped } };
    }
    const note = `runs on \`${name}\`: ${skipped.map((s) => `\`${s.backend}\` was ${s.why}`).join(", ")}`;
    deps.log.info({ jobId: job.id, from: job.backend, to: name, skipped }, "job routed to another backend");
    const moved = await deps.store.update(job.id, { backend: name, options: { ...options, route: note } });
    await deps.store.appendEvent(job.id, "routed", { from: job.backend, to: name, skipped });
    return { job: moved, route: { backend: name, skipped } };
  }
  const waiting = skipped.length ? skipped.map((s) => `\`${s.backend}\` is ${s.why}`).join(", ") : `\`${job.backend}\` is not enabled on this controller`;
  deps.log.info({ jobId: job.id, skipped }, "every backend this job may use is full, down or at its cap; it waits");
  if (job.options.waiting === waiting) return { job, waiting, noteChanged: false };
  const noted = await deps.store.update(job.id, { options: { ...job.options, waiting } });
  return { job: noted, waiting, noteChanged: true };
}

/** Shows a waiting job's reason in its status comment and check run (one write per change of reason). */
export async function publishWaiting(deps: PipelineDeps, job: Job): Promise<void> {
  const octokit = await deps.github.forInstallation(job.installationId);
  await new StatusPublisher(deps, octokit, job.id).flush();
}
