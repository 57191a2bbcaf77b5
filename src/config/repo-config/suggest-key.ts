/** Every key the file may have, for the unknown-key check and its suggestions. */
export const KNOWN_KEYS = [
  "agent",
  "command",
  "model",
  "models",
  "instructions",
  "max_minutes",
  "branch_prefix",
  "draft",
  "backend",
  "ssh_labels",
  "priority",
  "sizes",
  "budget",
  "network",
  "allow",
  "memory_mb",
  "max_processes",
  "max_disk_mb",
  "fork_pull_requests",
  "setup",
  "setup_minutes",
] as const;

/** Edit distance counting a swap of two neighbours as one edit (`agnet` is one away from `agent`). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

export function suggestKey(key: string): string | undefined {
  // `maxMinutes`, `max-minutes`, `Max_Minutes` all mean `max_minutes`.
  const normalised = key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/-/g, "_")
    .toLowerCase();
  let best: { key: string; distance: number } | undefined;
  for (const known of KNOWN_KEYS) {
    const distance = editDistance(normalised, known);
    if (!best || distance < best.distance) best = { key: known, distance };
  }
  if (!best) return undefined;
  const allowed = best.key.length <= 5 ? 1 : 2;
  return best.distance <= allowed ? best.key : undefined;
}
