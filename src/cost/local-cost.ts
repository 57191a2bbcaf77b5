/** The cost line for a job that ran on the controller's own machine: no bill, only time. */
export function localCost(seconds: number): { usd: 0; seconds: number; text: string } {
  return { usd: 0, seconds, text: `$0 (local) — ${formatSeconds(seconds)} of compute` };
}

/**
 * "42 s", "3 min 5 s", "1 h 2 min" (seconds dropped from an hour on); zero parts left out.
 * Same output as src/jobs/format-duration.ts, which was not yet committed when this was written.
 */
function formatSeconds(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const min = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const parts = [h > 0 ? `${h} h` : "", min > 0 ? `${min} min` : "", s > 0 && h === 0 ? `${s} s` : ""].filter(Boolean);
  return parts.length > 0 ? parts.join(" ") : "0 s";
}
