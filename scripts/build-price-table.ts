/**
 * Builds src/cost/gce-prices.json, the price table agent-work ships, from the
 * google-cloud-pricing-cost-calculator YAML (Nils Knieling, Apache-2.0).
 *
 *   npm run prices                      # default source, writes src/cost/gce-prices.json
 *   npm run prices -- <source.yml> [<out.json>]
 *
 * The output is deterministic (keys sorted at every level, fixed layout), so rerunning on the same
 * source gives the same bytes; a unit test checks that against the committed file.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { z } from "zod";
import type { DiskType, MachinePrice, PriceTable } from "../src/cost/price-table.js";
import { renderPriceTable } from "./render-price-table.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// The source is 138k lines, so it stays outside the repo, next to the checkout.
const defaultSource = resolve(repoRoot, "../shared/data/gce-pricing-2026-07-30.yml");
const defaultOut = resolve(repoRoot, "src/cost/gce-prices.json");

/** Families a worker would plausibly run on; the full list (GPUs, memory-optimised…) is ~10x bigger. */
const MACHINE_FAMILIES = /^(?:e2|n2|n2d|c3|t2d|c2d)-|^n1-standard-/;
/** The YAML names disks hdd/balanced/ssd and carries the GCE name in `type`; we key by the GCE name. */
const DISK_TYPES: readonly DiskType[] = ["pd-balanced", "pd-ssd", "pd-standard"];
const LICENCE = "Apache-2.0, Copyright 2022-2025 Nils Knieling";

const Source = z.object({
  about: z.object({ generated: z.string(), url: z.string() }),
  compute: z.object({
    instance: z.record(
      z.string(),
      z.object({
        cost: z.record(z.string(), z.object({ hour: z.number().optional(), hour_spot: z.number().optional() })).optional(),
      }),
    ),
    storage: z.record(z.string(), z.object({ type: z.string().optional(), cost: z.record(z.string(), z.object({ month: z.number().optional() })) })),
  }),
});

function buildPriceTable(source: z.infer<typeof Source>, fileName: string): PriceTable {
  const machines: PriceTable["machines"] = {};
  for (const [type, instance] of Object.entries(source.compute.instance)) {
    if (!MACHINE_FAMILIES.test(type)) continue;
    const regions: Record<string, MachinePrice> = {};
    for (const [region, cost] of Object.entries(instance.cost ?? {})) {
      const price: MachinePrice = {};
      if (cost.hour !== undefined) price.hour = cost.hour;
      if (cost.hour_spot !== undefined) price.hourSpot = cost.hour_spot;
      // n1-standard-* in a few new regions are sold as spot only; keep whatever the source has.
      if (price.hour !== undefined || price.hourSpot !== undefined) regions[region] = price;
    }
    if (Object.keys(regions).length > 0) machines[type] = regions;
  }

  const disks = {} as PriceTable["disks"];
  for (const diskType of DISK_TYPES) {
    const entry = Object.values(source.compute.storage).find((s) => s.type === diskType);
    if (!entry) throw new Error(`The source has no compute.storage entry with type ${diskType}`);
    const perRegion: Record<string, number> = {};
    for (const [region, cost] of Object.entries(entry.cost)) {
      if (cost.month !== undefined) perRegion[region] = cost.month;
    }
    disks[diskType] = perRegion;
  }

  return {
    source: {
      file: fileName,
      generated: source.about.generated,
      url: source.about.url,
      licence: LICENCE,
      generatedBy: "scripts/build-price-table.ts",
    },
    machines,
    disks,
  };
}

const sourcePath = resolve(process.argv[2] ?? defaultSource);
const outPath = resolve(process.argv[3] ?? defaultOut);
const parsed = Source.safeParse(parse(readFileSync(sourcePath, "utf8")));
if (!parsed.success) {
  console.error(`${sourcePath} does not look like google-cloud-pricing-cost-calculator's pricing.yml:`);
  console.error(parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`).join("\n"));
  process.exit(1);
}
const table = buildPriceTable(parsed.data, basename(sourcePath));
const json = renderPriceTable(table);
writeFileSync(outPath, json);
const types = Object.keys(table.machines).length;
console.log(`Wrote ${outPath}: ${types} machine types, ${Buffer.byteLength(json)} bytes, from ${sourcePath}`);
