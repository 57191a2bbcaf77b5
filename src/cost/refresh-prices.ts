/**
 * Refreshes the e2 prices of a price table from the Cloud Billing Catalog API, the live source the
 * bundled YAML-era table was generated from (see PRICES.md).
 *
 * GCE has no per-machine-type SKU for e2: it bills a per-vCPU-hour rate and a per-GiB-hour rate,
 * one pair on-demand ("E2 Instance Core running in Americas", "E2 Instance Ram running in …") and
 * one spot ("Spot Preemptible E2 Instance Core running in …"), each SKU covering the regions in its
 * `serviceRegions`. A machine type's hourly price is vCPUs × core rate + GiB × RAM rate, which
 * reproduces every e2 figure of the bundled table (a unit test checks that). Other families are
 * priced by other SKU shapes and are carried over from the base table as they are.
 */
import type { protos } from "@google-cloud/billing";
import type { MachinePrice, PriceTable } from "./price-table.js";

export const COMPUTE_ENGINE_SERVICE = "services/6F81-5844-456A";
const CATALOG_URL = `https://cloudbilling.googleapis.com/v1/${COMPUTE_ENGINE_SERVICE}/skus`;
/** The most the API returns in one page; fewer round trips for the ~2,000 Compute Engine SKUs. */
const PAGE_SIZE = 5000;

export type CatalogSku = protos.google.cloud.billing.v1.ISku;

/**
 * The one call made to the catalog. `CloudCatalogClient` from @google-cloud/billing satisfies it;
 * tests may pass any object with this method.
 */
export interface CatalogSkuLister {
  listSkusAsync(request: { parent: string; currencyCode?: string; pageSize?: number }, options?: { autoPaginate?: boolean }): AsyncIterable<CatalogSku>;
}

export interface RefreshResult {
  /** The base table with its e2 prices recomputed; same shape, `source` naming catalog, date and base. */
  table: PriceTable;
  /** Prices (one machine type's `hour` or `hourSpot` in one region) recomputed from catalog rates. */
  updated: number;
  /** Prices carried over from the base as they were: other families, and e2 where a rate was missing. */
  unchanged: number;
  /** What was left as it was and why, for an operator to read. */
  notes: string[];
}

/** The source of a refreshed table: the base table's source is kept in `base` for its attribution. */
export type RefreshedSource = PriceTable["source"] & { base: PriceTable["source"] };

type Market = "onDemand" | "spot";
type Resource = "core" | "ram";

const MARKETS: readonly Market[] = ["onDemand", "spot"];
const PRICE_FIELD: Record<Market, keyof MachinePrice> = { onDemand: "hour", spot: "hourSpot" };
const MARKET_NAME: Record<Market, string> = { onDemand: "on-demand", spot: "spot" };

/** How each of the four SKUs reads, what it is billed in, and its usage type. */
const SKU_KINDS: readonly { market: Market; resource: Resource; pattern: RegExp; label: string; unit: string; usageType: string }[] = [
  { market: "onDemand", resource: "core", pattern: /^E2 Instance Core running in /, label: "E2 Instance Core running in …", unit: "h", usageType: "OnDemand" },
  {
    market: "onDemand",
    resource: "ram",
    pattern: /^E2 Instance Ram running in /,
    label: "E2 Instance Ram running in …",
    unit: "GiBy.h",
    usageType: "OnDemand",
  },
  {
    market: "spot",
    resource: "core",
    pattern: /^Spot Preemptible E2 Instance Core running in /,
    label: "Spot Preemptible E2 Instance Core running in …",
    unit: "h",
    usageType: "Preemptible",
  },
  {
    market: "spot",
    resource: "ram",
    pattern: /^Spot Preemptible E2 Instance Ram running in /,
    label: "Spot Preemptible E2 Instance Ram running in …",
    unit: "GiBy.h",
    usageType: "Preemptible",
  },
];

/**
 * vCPUs and GiB that GCE bills for an e2 machine type, in quarters so that the shared-core types
 * (a quarter, half or whole vCPU, whatever the guest sees) stay whole numbers.
 */
function e2BilledQuarters(machineType: string): { vcpu: number; gib: number } | undefined {
  const shared: Record<string, [number, number]> = {
    "e2-micro": [0.25, 1],
    "e2-small": [0.5, 2],
    "e2-medium": [1, 4],
  };
  const sharedShape = Object.hasOwn(shared, machineType) ? shared[machineType] : undefined;
  if (sharedShape) return { vcpu: sharedShape[0] * 4, gib: sharedShape[1] * 4 };
  const m = /^e2-(standard|highmem|highcpu)-(\d+)$/.exec(machineType);
  if (!m) return undefined;
  const vcpu = Number(m[2]);
  const gibPerVcpu = { standard: 4, highmem: 8, highcpu: 1 }[m[1] as "standard" | "highmem" | "highcpu"];
  return { vcpu: vcpu * 4, gib: vcpu * gibPerVcpu * 4 };
}

/**
 * Lists the Compute Engine SKUs, takes the e2 core and RAM rates per region and market, and
 * recomputes every e2 price of `base` they cover. Throws when the catalog cannot be read or has
 * none of the e2 SKUs; anything narrower (a region with a core rate but no RAM rate, a SKU in an
 * unexpected unit) leaves those prices as the base has them and says so in `notes`.
 */
export async function refreshPriceTable(client: CatalogSkuLister, base: PriceTable, opts: { now?: () => Date } = {}): Promise<RefreshResult> {
  const now = (opts.now ?? (() => new Date()))();
  const notes: string[] = [];

  const skus = await listComputeSkus(client);
  if (skus.length === 0) {
    throw new Error(
      `The Cloud Billing Catalog listed no SKUs for ${COMPUTE_ENGINE_SERVICE} (Compute Engine), so there are no ` +
        `e2 rates to refresh from; the price table was not changed.`,
    );
  }

  // rates[market][resource]: region → nanos of USD per vCPU-hour or per GiB-hour.
  const rates = {
    onDemand: { core: new Map<string, number>(), ram: new Map<string, number>() },
    spot: { core: new Map<string, number>(), ram: new Map<string, number>() },
  };
  const conflicts = new Set<string>();
  const found = new Set<string>();
  for (const sku of skus) {
    const description = sku.description ?? "";
    const kind = SKU_KINDS.find((k) => k.pattern.test(description));
    if (!kind) continue;
    found.add(kind.label);
    const nanos = unitPriceNanos(sku, kind, notes);
    if (nanos === undefined) continue;
    const byRegion = rates[kind.market][kind.resource];
    for (const region of sku.serviceRegions ?? []) {
      const seen = byRegion.get(region);
      const key = `${kind.market}/${kind.resource}/${region}`;
      // Two SKUs for one region would be a catalog change this code does not understand: guess neither.
      if (seen !== undefined && seen !== nanos && !conflicts.has(key)) {
        conflicts.add(key);
        notes.push(
          `Two "${kind.label}" SKUs price ${region} differently (${seen / 1e9} and ${nanos / 1e9} USD); its ${MARKET_NAME[kind.market]} e2 prices are left at the base table's.`,
        );
      }
      byRegion.set(region, nanos);
    }
  }
  if (found.size === 0) {
    throw new Error(
      `The Cloud Billing Catalog listed ${skus.length} SKUs for ${COMPUTE_ENGINE_SERVICE} (Compute Engine) but none ` +
        `described as ${SKU_KINDS.map((k) => `"${k.label}"`).join(", ")}; Google may have renamed them. ` +
        `The price table was not changed.`,
    );
  }
  for (const kind of SKU_KINDS) {
    if (!found.has(kind.label)) notes.push(`No "${kind.label}" SKU in the catalog at all.`);
  }
  const conflicting = (market: Market, region: string): boolean => conflicts.has(`${market}/core/${region}`) || conflicts.has(`${market}/ram/${region}`);

  const machines: PriceTable["machines"] = {};
  let updated = 0;
  let unchanged = 0;
  let otherFamilies = 0;
  const unknownE2 = new Set<string>();
  // region → what kept a market's prices as they were, reported once per region rather than per machine type.
  const missing: Record<Market, Map<string, string>> = { onDemand: new Map(), spot: new Map() };
  const baseE2Regions = new Set<string>();

  for (const [machineType, regions] of Object.entries(base.machines)) {
    const shape = machineType.startsWith("e2-") ? e2BilledQuarters(machineType) : undefined;
    if (machineType.startsWith("e2-") && !shape) unknownE2.add(machineType);
    if (!machineType.startsWith("e2-")) otherFamilies++;
    machines[machineType] = {};
    for (const [region, price] of Object.entries(regions)) {
      const next: MachinePrice = { ...price };
      if (shape) baseE2Regions.add(region);
      for (const market of MARKETS) {
        const field = PRICE_FIELD[market];
        if (price[field] === undefined) continue;
        const core = rates[market].core.get(region);
        const ram = rates[market].ram.get(region);
        if (shape && core !== undefined && ram !== undefined && !conflicting(market, region)) {
          // Whole nanos × whole quarters, divided once: the nearest double to the exact decimal price.
          next[field] = (shape.vcpu * core + shape.gib * ram) / 4e9;
          updated++;
          continue;
        }
        unchanged++;
        if (shape && !conflicting(market, region)) {
          missing[market].set(region, core !== undefined ? "no RAM rate" : ram !== undefined ? "no core rate" : "no rates");
        }
      }
      machines[machineType]![region] = next;
    }
  }

  for (const market of MARKETS) {
    const byReason = new Map<string, string[]>();
    for (const [region, reason] of missing[market]) byReason.set(reason, [...(byReason.get(reason) ?? []), region]);
    for (const [reason, regions] of byReason) {
      const what =
        reason === "no RAM rate"
          ? `a core rate but no "${SKU_KINDS.find((k) => k.market === market && k.resource === "ram")!.label}" rate`
          : reason === "no core rate"
            ? `a RAM rate but no "${SKU_KINDS.find((k) => k.market === market && k.resource === "core")!.label}" rate`
            : `no e2 rates`;
      notes.push(
        `${MARKET_NAME[market]}: the catalog has ${what} for ${regions.sort().join(", ")}; their ${MARKET_NAME[market]} e2 prices are left at the base table's.`,
      );
    }
  }
  const extraRegions = [...new Set(SKU_KINDS.flatMap((k) => [...rates[k.market][k.resource].keys()]))].filter((r) => !baseE2Regions.has(r)).sort();
  if (extraRegions.length > 0) {
    notes.push(
      `The catalog prices e2 in ${extraRegions.join(", ")}, which the base table does not list; not added, as the base table decides which machine types each region offers.`,
    );
  }
  if (unknownE2.size > 0) {
    notes.push(`${[...unknownE2].sort().join(", ")}: not a predefined e2 shape this refresh knows; left as they were.`);
  }
  if (otherFamilies > 0) {
    notes.push(
      `${otherFamilies} machine types of other families (n2, n2d, c3, …) and the disk prices are carried over from ${base.source.file} unchanged; only e2 is refreshed.`,
    );
  }

  const date = now.toISOString().slice(0, 10);
  const source: RefreshedSource = {
    file: `Cloud Billing Catalog ${date} (e2) + ${base.source.file}`,
    generated: now.toISOString().replace(/\.\d{3}Z$/, "Z"),
    url: CATALOG_URL,
    licence: `e2: Google Cloud list prices; the rest: ${base.source.licence}`,
    generatedBy: "src/cost/refresh-prices.ts",
    base: base.source,
  };
  return { table: { source, machines, disks: structuredClone(base.disks) }, updated, unchanged, notes };
}

async function listComputeSkus(client: CatalogSkuLister): Promise<CatalogSku[]> {
  const skus: CatalogSku[] = [];
  try {
    // autoPaginate: false on the *Async method still follows nextPageToken; it only silences gax's warning.
    for await (const sku of client.listSkusAsync({ parent: COMPUTE_ENGINE_SERVICE, currencyCode: "USD", pageSize: PAGE_SIZE }, { autoPaginate: false })) {
      skus.push(sku);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(
      `Could not list the SKUs of ${COMPUTE_ENGINE_SERVICE} (Compute Engine) from the Cloud Billing Catalog ` +
        `(${skus.length} read before the error): ${message}. Check that the Cloud Billing API ` +
        `(cloudbilling.googleapis.com) is enabled for the key's or credentials' project and that the key may call it.`,
      { cause: err },
    );
  }
  return skus;
}

/**
 * The SKU's current price in nanos of USD per vCPU-hour or GiB-hour, from the last tier of its
 * first pricing info (the catalog lists the current price first; the last tier is the rate once
 * past any free or introductory tier, and e2 SKUs have a single tier starting at 0).
 */
function unitPriceNanos(sku: CatalogSku, kind: (typeof SKU_KINDS)[number], notes: string[]): number | undefined {
  const skip = (why: string): undefined => {
    notes.push(`Skipped SKU ${sku.skuId ?? sku.name ?? "?"} "${sku.description}": ${why}.`);
    return undefined;
  };
  const usageType = sku.category?.usageType;
  if (usageType && usageType !== kind.usageType) return skip(`usage type ${usageType}, expected ${kind.usageType}`);
  const expression = sku.pricingInfo?.[0]?.pricingExpression;
  if (!expression) return skip("no pricing info");
  if (expression.usageUnit !== kind.unit) return skip(`priced per ${expression.usageUnit}, expected ${kind.unit}`);
  const tiers = [...(expression.tieredRates ?? [])].sort((a, b) => (a.startUsageAmount ?? 0) - (b.startUsageAmount ?? 0));
  const price = tiers.at(-1)?.unitPrice;
  if (!price) return skip("no tiered rates");
  if (price.currencyCode && price.currencyCode !== "USD") return skip(`priced in ${price.currencyCode}, not USD`);
  // int64 units arrive as a string over REST (a Long or number over gRPC).
  const units = Number(String(price.units ?? 0));
  const nanos = units * 1e9 + (price.nanos ?? 0);
  if (!Number.isSafeInteger(nanos) || nanos <= 0) return skip(`unit price ${String(price.units)} units + ${price.nanos} nanos is not a positive price`);
  return nanos;
}
