/** "2026-11-28 21:30 UTC": one time zone for everyone reading the same job. */
export function formatTime(epochMs: number): string {
  return `${new Date(epochMs).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** "21:30:05", the log's time column (UTC, as the client script prints it too). */
export function formatClock(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(11, 19);
}
