import type { RepoConfig } from "../config/repo-config.js";
import type { Budgets } from "../cost/ledger.js";
import { effectiveBudgets, minutesWithinBudget } from "../cost/budgets.js";
import { costOf, type JobPricing } from "../cost/price-job.js";
import { modelAllowanceUsd } from "../cost/model-budget.js";
import type { PipelineDeps } from "./deps.js";

export interface JobCeiling {
  budgets: Budgets;
  /** The repository's minutes, or fewer when the per-job budget buys fewer at this price. */
  maxMinutes: number;
  modelAllowanceUsd: number;
  /** What the budgets hold for the job: compute for its whole limit, plus its model allowance. */
  ceilingUsd: number;
}

/**
 * What a job may cost at `pricing`, worked out the same way where it is reserved (the job's start)
 * and where a backend's hourly cap is looked at (routing), so the two never disagree. Compute is
 * priced at the on-demand rate when a spot VM may fall back to on-demand (the dearest placement
 * it may get); a model may spend what the job budget leaves after compute.
 */
export function jobCeiling(deps: Pick<PipelineDeps, "config" | "priceTable">, config: RepoConfig, pricing: JobPricing): JobCeiling {
  const budgets = effectiveBudgets(deps.config.budgets, config.budget);
  const affordable = minutesWithinBudget(budgets.jobUsd, pricing.rateUsdPerHour);
  const maxMinutes = affordable >= 1 && affordable < config.maxMinutes ? affordable : config.maxMinutes;
  const worst = pricing.spot && deps.config.gce?.onDemandFallback ? { ...pricing, spot: false } : pricing;
  const computeCeiling = costOf(worst, maxMinutes * 60, deps.priceTable).totalUsd;
  const modelAllowance = modelAllowanceUsd(config.agent, budgets.jobUsd, computeCeiling);
  return { budgets, maxMinutes, modelAllowanceUsd: modelAllowance, ceilingUsd: computeCeiling + modelAllowance };
}
