import { formatDuration } from "../jobs/format-duration.js";

/** The cost line for a job that ran on the controller's own machine: no bill, only time. */
export function localCost(seconds: number): { usd: 0; seconds: number; text: string } {
  return { usd: 0, seconds, text: `$0 (local) — ${formatDuration(seconds)} of compute` };
}
