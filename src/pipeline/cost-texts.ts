import type { Job } from "../jobs/types.js";
import { formatDuration } from "../jobs/format-duration.js";
import { formatUsd } from "../cost/estimate.js";
import { costOf, priceJob, type JobPricing } from "../cost/price-job.js";
import { effectiveBudgets } from "../cost/budgets.js";
import type { PipelineDeps } from "./deps.js";

function pricingOf(deps: Pick<PipelineDeps, "config" | "priceTable">, job: Job): JobPricing | undefined {
  try {
    return priceJob({ backend: job.backend, machine: job.options.machine }, deps.config.gce, deps.priceTable);
  } catch {
    return undefined;
  }
}

/** "$0 (local; at most 30 min of compute)" or "at most $0.04 (e2-small spot in us-central1, 30 min)". */
export function ceilingText(deps: Pick<PipelineDeps, "config" | "priceTable">, job: Job): string {
  const maxMinutes = job.config?.maxMinutes ?? deps.config.defaultMaxMinutes;
  const pricing = pricingOf(deps, job);
  if (!pricing) return `unknown (no price for backend \`${job.backend}\`)`;
  if (pricing.kind === "free") return `$0 (${pricing.label}; at most ${maxMinutes} min of compute)`;
  return `at most ${formatUsd(costOf(pricing, maxMinutes * 60, deps.priceTable).totalUsd)} (${pricing.label}, ${maxMinutes} min)`;
}

/**
 * The ceiling shown while a job waits or runs, and once it is over the billed figure from the
 * ledger with the repository's month so far against its budget.
 */
export async function costTexts(
  deps: Pick<PipelineDeps, "config" | "ledger" | "now" | "priceTable">,
  job: Job,
): Promise<{ ceilingText: string; costText?: string; meterText?: string }> {
  const ceiling = ceilingText(deps, job);
  if (job.finishedAt === null) {
    // The live meter: what the worker has cost so far at its rate, while it exists.
    const pricing = job.startedAt ? pricingOf(deps, job) : undefined;
    if (!pricing || !job.startedAt) return { ceilingText: ceiling };
    const seconds = Math.max(0, (deps.now() - job.startedAt) / 1000);
    const meter = pricing.kind === "free" ? `$0 (${pricing.label}) — ${formatDuration(seconds)} so far` : `${formatUsd(costOf(pricing, seconds, deps.priceTable).totalUsd)} so far (${formatDuration(seconds)} of ${pricing.label})`;
    return { ceilingText: ceiling, meterText: `${meter}; ceiling ${ceiling}` };
  }
  const entry = await deps.ledger.get(job.id);
  if (!entry || entry.state !== "final") return { ceilingText: ceiling, costText: "$0 (no worker was started)" };
  const seconds = entry.billedSeconds ?? 0;
  const label = pricingOf(deps, job)?.label ?? entry.backend;
  const figure =
    entry.rateUsdPerHour === 0
      ? `$0 (${label}) — ${formatDuration(seconds)} of compute`
      : `${formatUsd(entry.totalUsd ?? 0)} (${label}, ${formatDuration(seconds)} at $${entry.rateUsdPerHour.toFixed(4)}/h with disk; ${entry.rateSource})`;
  const month = await deps.ledger.monthToDate(job.repoId);
  const budget = effectiveBudgets(deps.config.budgets, job.config?.budget).repoMonthlyUsd;
  const usage = entry.agentUsage?.costUsd !== undefined ? ` · the agent reported ${formatUsd(entry.agentUsage.costUsd)} of model use` : "";
  return { ceilingText: ceiling, costText: `${figure}${usage} · ${job.owner}/${job.repo} this month: ${formatUsd(month)} of ${formatUsd(budget)}` };
}
