import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { JOB_STATES } from "../jobs/state.js";

export interface Metrics {
  registry: Registry;
  jobDuration: Histogram<"outcome">;
  githubApiCalls: Counter<"method" | "route">;
  deliveries: Counter<"event" | "outcome">;
  /** Labelled by backend, and by repository only when the operator asked (METRICS_REPO_LABELS). */
  costUsd: { inc(labels: { repo: string; backend: string }, usd: number): void };
  workerSeconds: Counter<"backend">;
}

export interface MetricsOptions {
  /**
   * Label costs with `owner/repo`. Off by default: whoever reads the metrics would learn the names
   * of private repositories, and one series per repository grows without bound.
   */
  repoLabels?: boolean;
  /** The gce warm pool's idle cost in USD per hour (parked disks and memory), shown as a gauge. */
  poolIdleUsdPerHour?: number;
}

/**
 * One registry per controller (never prom-client's global), so tests and several controllers in
 * one process do not share counters. `countJobs` is read at scrape time from the store.
 */
export function createMetrics(countJobs: () => Promise<Record<string, number>>, options: MetricsOptions = {}): Metrics {
  const repoLabels = options.repoLabels ?? false;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "agent_work_" });
  new Gauge({
    name: "agent_work_jobs",
    help: "Jobs by state, as recorded in the store",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      const counts = await countJobs();
      for (const s of JOB_STATES) this.set({ state: s }, counts[s] ?? 0);
    },
  });
  new Gauge({
    name: "agent_work_gce_pool_idle_usd_per_hour",
    help: "What the gce warm pool costs per hour while it waits (parked disks and suspended memory, list prices); 0 without a pool",
    registers: [registry],
  }).set(options.poolIdleUsdPerHour ?? 0);
  return {
    registry,
    jobDuration: new Histogram({
      name: "agent_work_job_duration_seconds",
      help: "Wall-clock seconds from trigger to the job's end, by outcome",
      labelNames: ["outcome"],
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers: [registry],
    }),
    githubApiCalls: new Counter({
      name: "agent_work_github_api_calls_total",
      help: "GitHub REST calls made by the controller, by method and route template",
      labelNames: ["method", "route"],
      registers: [registry],
    }),
    costUsd: labelRepoOptionally(
      new Counter({
        name: "agent_work_cost_usd_total",
        help: `Billed cost of finished jobs in USD (list prices), by ${repoLabels ? "repository and " : ""}backend`,
        labelNames: repoLabels ? ["repo", "backend"] : ["backend"],
        registers: [registry],
      }),
      repoLabels,
    ),
    workerSeconds: new Counter({
      name: "agent_work_worker_seconds_total",
      help: "Seconds workers existed (VM-seconds on gce), create to delete, by backend",
      labelNames: ["backend"],
      registers: [registry],
    }),
    deliveries: new Counter({
      name: "agent_work_webhook_deliveries_total",
      help: "Webhook deliveries by event and what the handler did with them",
      labelNames: ["event", "outcome"],
      registers: [registry],
    }),
  };
}

/** Drops the repository label unless it was asked for (prom-client refuses labels it was not given). */
function labelRepoOptionally(counter: Counter<"repo" | "backend">, repoLabels: boolean): Metrics["costUsd"] {
  return {
    inc: ({ repo, backend }, usd) => counter.inc(repoLabels ? { repo, backend } : { backend }, usd),
  };
}
