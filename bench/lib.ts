/** Small helpers the benchmark scripts share: percentiles, argument parsing, the result table. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  return v !== undefined && Number.isFinite(v) ? v : fallback;
}

/** A flag's text (`--compare /work/wt/before`), or undefined when it is not given. */
export function textArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

export interface BenchRow {
  bench: string;
  figure: string;
  reference: string;
  goal: string;
  met: boolean;
}

export function printRows(rows: BenchRow[]): void {
  const header = ["bench", "figure", "reference (same run)", "goal", "met"];
  const lines = rows.map((r) => [r.bench, r.figure, r.reference, r.goal, r.met ? "yes" : "NO"]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(fmt(header));
  console.log(`| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`);
  for (const l of lines) console.log(fmt(l));
}

/** When run as a script (not imported by run-all), print the rows; the JSON line lets run-all collect them. */
export function report(rows: BenchRow[]): void {
  printRows(rows);
  console.log(`BENCH_JSON ${JSON.stringify(rows)}`);
}

export const ms = (v: number) => `${v.toFixed(1)} ms`;
