import type { Job } from "../jobs/types.js";
import { formatDuration } from "../jobs/format-duration.js";
import { formatUsd } from "../cost/estimate.js";
import { costOf, priceJob, type JobPricing } from "../cost/price-job.js";
import { effectiveBudgets } from "../cost/budgets.js";
import type { PipelineDeps } from "./deps.js";
import type { AgentUsage } from "../cost/ledger.js";

function pricingOf(deps: Pick<PipelineDeps, "config" | "priceTable">, job: Job): JobPricing | undefined {
  try {
    return priceJob({ backend: job.backend, machine: job.options.machine }, deps.config.gce, deps.priceTable, deps.config.cloudrun);
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
/** "claude-opus-5-5: 2,000 tokens in, 200 out": the model (when known) and its tokens. */
export function modelTokensText(usage: AgentUsage): string {
  return `${usage.model ? `${usage.model}: ` : ""}${(usage.inputTokens ?? 0).toLocaleString("en-US")} tokens in, ${(usage.outputTokens ?? 0).toLocaleString("en-US")} out`;
}

/** "model $0.0120 (claude-opus-5-5: 2,000 tokens in, 200 out; reported by claude-code)". */
export function modelUsageText(usage: AgentUsage): string {
  const what = modelTokensText(usage);
  if (usage.costUsd === undefined) return `model: ${what}; no price known for it (set \`model:\` to one in the price table)`;
  return `model ${formatUsd(usage.costUsd)} (${what}; ${usage.costSource ?? `reported by ${usage.source}`})`;
}

export async function costTexts(
  deps: Pick<PipelineDeps, "config" | "ledger" | "now" | "priceTable">,
  job: Job,
  /** The running agent's model use so far, while the job runs. */
  running?: AgentUsage | null,
): Promise<{ ceilingText: string; costText?: string; meterText?: string }> {
  const ceiling = ceilingText(deps, job);
  if (job.finishedAt === null) {
    // The live meter: what the worker has cost so far at its rate, while it exists.
    const pricing = job.startedAt ? pricingOf(deps, job) : undefined;
    if (!pricing || !job.startedAt) return { ceilingText: ceiling };
    const seconds = Math.max(0, (deps.now() - job.startedAt) / 1000);
    const computeUsd = costOf(pricing, seconds, deps.priceTable).totalUsd;
    const meter =
      pricing.kind === "free"
        ? `$0 (${pricing.label}) — ${formatDuration(seconds)} so far`
        : `${formatUsd(computeUsd)} so far (${formatDuration(seconds)} of ${pricing.label})`;
    if (!running) return { ceilingText: ceiling, meterText: `${meter}; ceiling ${ceiling}` };
    const total = computeUsd + (running.costUsd ?? 0);
    return { ceilingText: ceiling, meterText: `compute ${meter} + ${modelUsageText(running)} = ${formatUsd(total)} so far; ceiling ${ceiling}` };
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
  const repoMonth = `${job.owner}/${job.repo} this month: ${formatUsd(month)} of ${formatUsd(budget)}`;
  if (!entry.agentUsage) return { ceilingText: ceiling, costText: `${figure} · ${repoMonth}` };
  // compute + model = total, each as the bill shows it.
  const computeFigure =
    entry.rateUsdPerHour === 0
      ? figure
      : `${formatUsd((entry.totalUsd ?? 0) - (entry.agentUsage.costUsd ?? 0))} (${label}, ${formatDuration(seconds)}; ${entry.rateSource})`;
  return {
    ceilingText: ceiling,
    costText: `compute ${computeFigure} + ${modelUsageText(entry.agentUsage)} = ${formatUsd(entry.totalUsd ?? 0)} · ${repoMonth}`,
  };
}
