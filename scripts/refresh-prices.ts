/**
 * Refreshes the e2 prices of the price table from the Cloud Billing Catalog API and writes the
 * result as JSON (src/cost/refresh-prices.ts does the work; see src/cost/PRICES.md).
 *
 *   tsx scripts/refresh-prices.ts <out.json> [--base <table.json>] [--api-endpoint <url>]
 *   tsx scripts/refresh-prices.ts --in-place [--base <table.json>]   # overwrites src/cost/gce-prices.json
 *
 * Credentials: CLOUD_BILLING_API_KEY (an API key allowed to call cloudbilling.googleapis.com) if
 * set, else Application Default Credentials. `--api-endpoint http://127.0.0.1:PORT` points the
 * client at a local fake (tests); with http and no API key it sends no credentials.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { renderPriceTable } from "./render-price-table.js";
import { CloudCatalogClient } from "@google-cloud/billing";
import { PassThroughClient } from "google-auth-library";
import { bundledPriceTable, type PriceTable } from "../src/cost/price-table.js";
import { refreshPriceTable, type CatalogSkuLister } from "../src/cost/refresh-prices.js";

type ClientOptions = NonNullable<ConstructorParameters<typeof CloudCatalogClient>[0]>;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bundledPath = resolve(repoRoot, "src/cost/gce-prices.json");

const USAGE = `Usage: tsx scripts/refresh-prices.ts <out.json> [--base <table.json>] [--api-endpoint <url>]
       tsx scripts/refresh-prices.ts --in-place [--base <table.json>] [--api-endpoint <url>]

Recomputes the e2 prices of the price table (the bundled src/cost/gce-prices.json unless --base)
from the Cloud Billing Catalog's E2 core and RAM rates, and writes the table to <out.json>.
--in-place overwrites src/cost/gce-prices.json instead (a table that then differs from its YAML
source, which test/unit/cost.test.ts checks). Credentials: CLOUD_BILLING_API_KEY, else
Application Default Credentials.`;

function usage(problem: string): never {
  console.error(`${problem}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        "in-place": { type: "boolean", default: false },
        base: { type: "string" },
        "api-endpoint": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals.length > 1) usage(`Expected one output path, got ${positionals.length}: ${positionals.join(" ")}`);
  const inPlace = values["in-place"];
  if (inPlace && positionals.length === 1) usage("Give either an output path or --in-place, not both.");
  if (!inPlace && positionals.length === 0) usage("Missing the output path (or --in-place to overwrite the bundled table).");
  const outPath = inPlace ? bundledPath : resolve(positionals[0]!);
  if (!inPlace && outPath === bundledPath) {
    usage(`${outPath} is the bundled price table; pass --in-place to overwrite it on purpose.`);
  }

  const basePath = values.base ? resolve(values.base) : undefined;
  const base = basePath ? readPriceTable(basePath) : bundledPriceTable;
  const client = new CloudCatalogClient(clientOptions(values["api-endpoint"], process.env.CLOUD_BILLING_API_KEY));
  try {
    const lister: CatalogSkuLister = client;
    const result = await refreshPriceTable(lister, base);
    writeFileSync(outPath, renderPriceTable(result.table));
    console.log(`Wrote ${outPath}: e2 prices refreshed from the Cloud Billing Catalog over ${basePath ?? "the bundled table"} ` + `(${base.source.file}).`);
    console.log(`  ${result.updated} prices recomputed from catalog rates, ${result.unchanged} carried over as they were.`);
    for (const line of movedSummary(base, result.table)) console.log(`  ${line}`);
    if (result.notes.length > 0) {
      console.log("Notes:");
      for (const note of result.notes) console.log(`  - ${note}`);
    }
  } finally {
    await client.close();
  }
}

function clientOptions(endpoint: string | undefined, apiKey: string | undefined): ClientOptions {
  // REST: one HTTP path for the real API and a local fake, and no gRPC to load.
  const options: ClientOptions = { fallback: true };
  let local = false;
  if (endpoint) {
    const url = new URL(endpoint.includes("://") ? endpoint : `https://${endpoint}`);
    if (url.protocol !== "http:" && url.protocol !== "https:") usage(`--api-endpoint must be http(s), not ${url.protocol}`);
    options.apiEndpoint = url.hostname;
    options.port = Number(url.port || (url.protocol === "http:" ? 80 : 443));
    options.protocol = url.protocol.slice(0, -1);
    local = url.protocol === "http:";
  }
  if (apiKey) options.apiKey = apiKey;
  // A plain-http endpoint is a fake on this machine: never send it real credentials.
  // google-gax bundles its own google-auth-library: the same class at run time, another type to tsc.
  else if (local) options.authClient = new PassThroughClient() as unknown as ClientOptions["authClient"];
  return options;
}

function readPriceTable(path: string): PriceTable {
  let table: unknown;
  try {
    table = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`Cannot read the base price table ${path}: ${(err as Error).message}`);
  }
  const t = table as Partial<PriceTable> | null;
  if (!t || typeof t.source?.file !== "string" || typeof t.machines !== "object" || typeof t.disks !== "object") {
    throw new Error(`${path} does not look like a price table (expected source.file, machines and disks)`);
  }
  return t as PriceTable;
}

/** How many recomputed prices moved, and the largest moves, so an operator sees what changed. */
function movedSummary(base: PriceTable, table: PriceTable): string[] {
  const moves: { what: string; from: number; to: number; rel: number }[] = [];
  for (const [type, regions] of Object.entries(table.machines)) {
    for (const [region, price] of Object.entries(regions)) {
      for (const field of ["hour", "hourSpot"] as const) {
        const from = base.machines[type]?.[region]?.[field];
        const to = price[field];
        if (from === undefined || to === undefined || from === to) continue;
        moves.push({ what: `${type}${field === "hourSpot" ? " spot" : ""} in ${region}`, from, to, rel: (to - from) / from });
      }
    }
  }
  if (moves.length === 0) return ["No price moved."];
  moves.sort((a, b) => Math.abs(b.rel) - Math.abs(a.rel));
  const pct = (rel: number) => `${rel >= 0 ? "+" : ""}${(rel * 100).toFixed(1)}%`;
  return [`${moves.length} prices moved; the largest:`, ...moves.slice(0, 5).map((m) => `  ${m.what}: $${m.from}/h → $${m.to}/h (${pct(m.rel)})`)];
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
