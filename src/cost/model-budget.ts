import type { AgentPreset } from "../agents/presets.js";
import { formatUsd } from "./estimate.js";
import type { AgentUsage } from "./ledger.js";

/**
 * What a job may spend on its model: the part of the per-job budget its compute ceiling leaves.
 * A custom `command` reports no model use agent-work can read, so nothing is held for it.
 */
export function modelAllowanceUsd(agent: AgentPreset, jobUsd: number, computeCeilingUsd: number): number {
  if (agent === "command") return 0;
  return Math.max(0, Math.floor((jobUsd - computeCeilingUsd) * 100) / 100);
}

/**
 * The reason to stop a job whose spend so far (the worker's time plus the model use its agent
 * reported) has passed the per-job budget, with the figures; null while it is within.
 */
export function overJobBudget(jobUsd: number, computeUsd: number, usage: AgentUsage | null): string | null {
  const modelUsd = usage?.costUsd ?? 0;
  const spent = computeUsd + modelUsd;
  if (!(spent > jobUsd)) return null;
  return `stopped at the per-job budget: model ${formatUsd(modelUsd)} + compute ${formatUsd(computeUsd)} = ${formatUsd(spent)}, over the ${formatUsd(jobUsd)} one job may cost`;
}
