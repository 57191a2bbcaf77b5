import { bundledPriceTable, DISK_TYPES, type DiskType, type PriceTable } from "./price-table.js";

/** GCE bills disks per GB-month and prorates by the second; Google's calculator counts 730 h a month. */
const HOURS_PER_MONTH = 730;
const SECONDS_PER_HOUR = 3600;
/** What the console offers by default; note the API's own default boot disk is pd-standard. */
const DEFAULT_DISK_TYPE: DiskType = "pd-balanced";

export interface EstimateInput {
  machineType: string;
  /** A region such as `us-central1`, not a zone. */
  region: string;
  spot: boolean;
  seconds: number;
  diskGb?: number;
  /** pd-balanced (default), pd-ssd or pd-standard. */
  diskType?: string;
}

export interface Estimate {
  usd: number;
  /** Compute only, USD per hour, on-demand or spot as asked. */
  rateUsdPerHour: number;
  /** Where the prices come from, for showing next to the figure. */
  source: string;
  breakdown: { compute: number; disk: number };
}

/**
 * List-price cost of running one machine for `seconds`, with an optional disk. Nothing is rounded:
 * callers add estimates up and round once, with {@link formatUsd}.
 */
export function estimate(input: EstimateInput, table: PriceTable = bundledPriceTable): Estimate {
  const { machineType, region, spot, seconds } = input;
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new RangeError(`Cannot estimate cost for ${seconds} seconds; expected a number >= 0`);
  }

  const regions = own(table.machines, machineType);
  if (!regions) {
    const family = `${machineType.split("-")[0]}-`;
    throw new Error(
      `Unknown GCE machine type "${machineType}": it is not in the bundled price table ` +
        `(${table.source.file}; e.g. ${sample(Object.keys(table.machines), family)}). ` +
        `Check the spelling, or add its family in scripts/build-price-table.ts and run \`npm run prices\`.`,
    );
  }
  const price = own(regions, region);
  if (!price) throw new Error(unknownRegion(machineType, region, Object.keys(regions)));
  const rate = spot ? price.hourSpot : price.hour;
  if (rate === undefined) {
    throw new Error(
      `No ${spot ? "spot" : "on-demand"} price for ${machineType} in ${region} in ${table.source.file}; ` +
        (spot ? "GCE does not sell it as spot there." : "GCE sells it only as spot there."),
    );
  }
  const compute = (rate * seconds) / SECONDS_PER_HOUR;

  let disk = 0;
  const diskGb = input.diskGb ?? 0;
  if (!Number.isFinite(diskGb) || diskGb < 0) {
    throw new RangeError(`Cannot estimate cost for a ${diskGb} GB disk; expected a number >= 0`);
  }
  if (diskGb > 0) {
    const diskType = input.diskType ?? DEFAULT_DISK_TYPE;
    if (!isDiskType(diskType)) {
      throw new Error(`Unknown disk type "${diskType}"; the price table knows ${DISK_TYPES.join(", ")}`);
    }
    const perGbMonth = own(table.disks[diskType], region);
    if (perGbMonth === undefined) {
      throw new Error(unknownRegion(`${diskType} disks`, region, Object.keys(table.disks[diskType])));
    }
    disk = (diskGb * perGbMonth * seconds) / (HOURS_PER_MONTH * SECONDS_PER_HOUR);
  }

  return {
    usd: compute + disk,
    rateUsdPerHour: rate,
    source: `GCE list prices from ${table.source.file} (generated ${table.source.generated})`,
    breakdown: { compute, disk },
  };
}

/** Dollars and cents; a cost too small to show as a cent reads "<$0.01" rather than a false "$0.00". */
export function formatUsd(usd: number): string {
  if (!Number.isFinite(usd) || usd < 0) throw new RangeError(`Cannot format ${usd} as a cost in USD`);
  // A 10-minute job on a small VM costs a fraction of a cent; "<$0.01" would hide the figure
  // people asked for, so below a cent four decimals are shown, and below that "<$0.0001".
  if (usd > 0 && usd < 0.0001) return "<$0.0001";
  if (usd > 0 && usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

/** Lookup by a caller's string that cannot hit Object.prototype ("constructor", "toString"). */
function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function isDiskType(value: string): value is DiskType {
  return (DISK_TYPES as readonly string[]).includes(value);
}

function unknownRegion(what: string, region: string, known: string[]): string {
  // A zone (us-central1-a) is the most likely mix-up: backends are configured with zones.
  const asRegion = region.replace(/-[a-z]$/, "");
  const hint =
    asRegion !== region && known.includes(asRegion)
      ? `"${region}" looks like a zone; pass its region, "${asRegion}".`
      : `Known regions include ${sample(known, `${region.split("-")[0]}-`)} (${known.length} in all).`;
  return `No price for ${what} in region "${region}". ${hint}`;
}

/** A handful of names, preferring those that start like the one the caller asked for. */
function sample(names: string[], prefix: string): string {
  const sorted = [...names].sort();
  const near = sorted.filter((n) => n.startsWith(prefix));
  return [...near, ...sorted.filter((n) => !n.startsWith(prefix))].slice(0, 5).join(", ");
}
