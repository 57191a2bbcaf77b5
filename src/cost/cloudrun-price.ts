/**
 * What a Cloud Run task costs per hour: vCPUs × the vCPU-second price + GiB × the GiB-second price,
 * from the bundled table (cloudrun-prices.json; source and date in PRICES.md). Jobs are billed for
 * the task's whole life (instance-based billing), so the rate holds for every second it runs.
 */
import table from "./cloudrun-prices.json" with { type: "json" };

export interface CloudRunPrices {
  source: { url: string; checked: string; what: string; licence: string };
  tiers: Record<string, { vcpuSecond: number; gibSecond: number }>;
  regions: Record<string, string>;
}

export const bundledCloudRunPrices: CloudRunPrices = table;

function gib(memory: string): number {
  const m = /^(\d+(?:\.\d+)?)(Mi|Gi)$/.exec(memory);
  if (!m) throw new Error(`memory ${JSON.stringify(memory)}: expected Mi or Gi`);
  return m[2] === "Gi" ? Number(m[1]) : Number(m[1]) / 1024;
}

/** USD per hour of one task of this size in this region; throws for a region the table does not price. */
export function cloudRunRatePerHour(
  size: { cpu: string; memory: string },
  region: string,
  prices: CloudRunPrices = bundledCloudRunPrices,
): { usdPerHour: number; source: string } {
  const tier = prices.regions[region];
  const rate = tier ? prices.tiers[tier] : undefined;
  if (!rate)
    throw new Error(
      `the bundled Cloud Run price table has no price for ${region} (it holds the Tier 1 regions: ${Object.keys(prices.regions).join(", ")}); see src/cost/PRICES.md`,
    );
  const perSecond = Number(size.cpu) * rate.vcpuSecond + gib(size.memory) * rate.gibSecond;
  return { usdPerHour: perSecond * 3600, source: `Cloud Run pricing ${prices.source.checked} (${tier})` };
}
