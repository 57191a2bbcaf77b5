import type { Logger } from "pino";
import type { Job } from "../jobs/types.js";
import type { RepoConfig } from "../config/repo-config.js";
import type { BudgetName, Budgets } from "../cost/ledger.js";
import type { JobPricing } from "../cost/price-job.js";
import type { PipelineDeps } from "./deps.js";
import { jobCeiling } from "./job-ceiling.js";

export type BudgetReservation =
  { ok: true; job: Job; config: RepoConfig; budgets: Budgets; modelAllowance: number } | { ok: false; job: Job; message: string; budget: BudgetName };

/**
 * Budgets before any worker: the per-job budget may shorten the job, and the reservation of
 * its ceiling is what keeps simultaneous jobs under the monthly and hourly caps, and under the
 * backend's own BACKEND_CAPS.
 */
export async function reserveBudget(deps: PipelineDeps, job: Job, config: RepoConfig, pricing: JobPricing, log: Logger): Promise<BudgetReservation> {
  // An agent with a model may spend up to what the job budget leaves after its compute: that is
  // held too, so the monthly and hourly caps count it while the job runs.
  const { budgets, maxMinutes, modelAllowanceUsd: modelAllowance, ceilingUsd } = jobCeiling(deps, config, pricing);
  const backendCap = deps.config.backendCaps?.[job.backend];
  const reservation = await deps.ledger.reserve({
    jobId: job.id,
    repoId: job.repoId,
    repoFullName: `${job.owner}/${job.repo}`,
    pricing,
    ceilingUsd,
    budgets,
    ...(backendCap ? { backendCap } : {}),
  });
  if (!reservation.ok) {
    const capped = reservation.budget === "backend_jobs" || reservation.budget === "backend_hourly";
    log[capped ? "info" : "warn"](
      { budget: reservation.budget, capUsd: reservation.capUsd, spentUsd: reservation.spentUsd },
      capped ? "the backend is at its cap; the job waits" : "over budget; no worker started",
    );
    return { ok: false, job, message: reservation.message, budget: reservation.budget };
  }
  if (maxMinutes < config.maxMinutes) {
    config = { ...config, maxMinutes };
    job = await deps.store.update(job.id, { config });
    log.info({ maxMinutes }, "the per-job budget shortens this job");
  }
  return { ok: true, job, config, budgets, modelAllowance };
}
