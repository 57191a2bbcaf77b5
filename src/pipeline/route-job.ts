import type { Job } from "../jobs/types.js";
import type { Backend } from "../backends/types.js";
import type { PipelineDeps } from "./deps.js";

/**
 * The backends a job may run on, in order: its own (the `--backend` flag, else the repository's
 * `backend`), then the controller's BACKEND_ORDER — unless the person asked for a backend by flag,
 * in which case the job never moves. Only enabled backends count.
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

/** Why a backend cannot take a job now, or undefined when it can. */
async function unavailable(backend: Backend): Promise<string | undefined> {
  try {
    const { max, active } = await backend.capacity();
    if (max <= 0) return "down (no host or slot answers)";
    if (active >= max) return `full (${active}/${max})`;
    return undefined;
  } catch (err) {
    return `down (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`;
  }
}

/**
 * Picks where a claimed job runs: the first backend in its preference order with room. Moves the
 * job there (written before anything is started on it) and notes why in its options, which the
 * status comment shows. Returns undefined when every choice is full or down: the job stays queued.
 */
export async function routeJob(deps: Pick<PipelineDeps, "store" | "backends" | "config" | "log">, job: Job): Promise<{ job: Job; route: Route } | undefined> {
  const order = preferenceOrder(job, deps.config.backendOrder, [...deps.backends.keys()]);
  const skipped: Route["skipped"] = [];
  for (const name of order) {
    const why = await unavailable(deps.backends.get(name)!);
    if (why) {
      skipped.push({ backend: name, why });
      continue;
    }
    if (name === job.backend) return { job, route: { backend: name, skipped } };
    const note = `runs on \`${name}\`: ${skipped.map((s) => `\`${s.backend}\` was ${s.why}`).join(", ")}`;
    deps.log.info({ jobId: job.id, from: job.backend, to: name, skipped }, "job routed to another backend");
    const moved = await deps.store.update(job.id, { backend: name, options: { ...job.options, route: note } });
    await deps.store.appendEvent(job.id, "routed", { from: job.backend, to: name, skipped });
    return { job: moved, route: { backend: name, skipped } };
  }
  deps.log.info({ jobId: job.id, skipped }, "every backend this job may use is full or down; it waits");
  return undefined;
}
