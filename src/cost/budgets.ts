import type { Budgets } from "./ledger.js";

/** A repository's own limits from `.github/agent-work.yml`; they can only lower the controller's. */
export interface RepoBudget {
  jobUsd?: number;
  monthlyUsd?: number;
}

export function effectiveBudgets(controller: Budgets, repo: RepoBudget | undefined): Budgets {
  return {
    jobUsd: Math.min(controller.jobUsd, repo?.jobUsd ?? Infinity),
    repoMonthlyUsd: Math.min(controller.repoMonthlyUsd, repo?.monthlyUsd ?? Infinity),
    globalHourlyUsd: controller.globalHourlyUsd,
  };
}

/**
 * The per-job budget also bounds the job's time: at `rateUsdPerHour`, the budget buys this many
 * whole minutes. Infinity for a job that costs nothing.
 */
export function minutesWithinBudget(jobUsd: number, rateUsdPerHour: number): number {
  if (rateUsdPerHour <= 0) return Infinity;
  return Math.floor((jobUsd / rateUsdPerHour) * 60);
}
