/**
 * `npm run bench`: every benchmark with short defaults, one table at the end. Each script also
 * runs alone with larger settings (see its header), e.g. `npm run bench:ingest -- --seconds 10`.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import { printRows, type BenchRow } from "./lib.js";
import { ingestBench } from "./ingest.js";
import { burstBench } from "./burst.js";
import { feedbackBench } from "./feedback.js";
import { apiCallsBench } from "./api-calls.js";
import { footprintBench } from "./footprint.js";
import { startBench } from "./start.js";
import { setupCacheBench } from "./setup-cache.js";
import { poolStartBench } from "./pool-start.js";

const benches: [string, () => Promise<BenchRow[]>][] = [
  ["ingest", ingestBench],
  ["feedback", feedbackBench],
  ["burst", burstBench],
  ["api-calls", apiCallsBench],
  ["footprint", footprintBench],
  ["start", startBench],
  ["setup-cache", setupCacheBench],
  ["pool-start", poolStartBench],
];
if (existsSync(new URL("./store-claims.ts", import.meta.url))) {
  // Imported by a computed name so this file compiles before the store benchmark exists.
  const name = "./store-claims.js";
  const { storeClaimsBench } = (await import(name)) as { storeClaimsBench: () => Promise<BenchRow[]> };
  benches.push(["store-claims", storeClaimsBench]);
}

const rows: BenchRow[] = [];
const started = Date.now();
for (const [name, bench] of benches) {
  process.stderr.write(`running ${name}…\n`);
  try {
    rows.push(...(await bench()));
  } catch (err) {
    rows.push({ bench: name, figure: "did not run", reference: err instanceof Error ? err.message.split("\n")[0]! : String(err), goal: "-", met: false });
  }
}
const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(
  `\nagent-work benchmarks, ${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${os.loadavg()[0]!.toFixed(1)}, took ${Math.round((Date.now() - started) / 1000)} s\n`,
);
printRows(rows);
