import { resourcesFor } from "../backends/cloudrun/build-run-job.js";
import type { CloudRunConfig, GceConfig } from "../config/env.js";
import { cloudRunRatePerHour } from "./cloudrun-price.js";
import { estimate } from "./estimate.js";
import { bundledPriceTable, type PriceTable } from "./price-table.js";

/** How one job is priced: what it runs on, the rate, and where the rate comes from. */
export interface JobPricing {
  backend: string;
  /** `free`: nothing is billed to this app's cloud account (your own machine, host or cluster). */
  kind: "free" | "metered";
  machineType?: string;
  region?: string;
  spot: boolean;
  diskGb?: number;
  diskType?: string;
  rateUsdPerHour: number;
  source: string;
  /** "local", "e2-small spot in us-central1", … */
  label: string;
}

const FREE: Record<string, string> = {
  local: "local",
  ssh: "ssh host (your own machine)",
  k8s: "k8s cluster (billed by your cluster)",
};

/** The region of a zone (`us-central1-a` → `us-central1`). */
export function regionOf(zone: string): string {
  return zone.replace(/-[a-z]$/, "");
}

export function priceJob(
  input: { backend: string; machine?: string },
  gce: Pick<GceConfig, "zones" | "machineType" | "spot" | "diskGb" | "diskType"> | undefined,
  table: PriceTable = bundledPriceTable,
  cloudrun?: Pick<CloudRunConfig, "region" | "cpu" | "memory">,
): JobPricing {
  if (input.backend === "cloudrun") {
    if (!cloudrun) throw new Error("the cloudrun backend is not configured (CLOUDRUN_PROJECT), so its jobs cannot be priced");
    const size = resourcesFor(input.machine, { cpu: cloudrun.cpu, memory: cloudrun.memory });
    const rate = cloudRunRatePerHour(size, cloudrun.region);
    return {
      backend: "cloudrun",
      kind: "metered",
      spot: false,
      region: cloudrun.region,
      rateUsdPerHour: rate.usdPerHour,
      source: rate.source,
      label: `Cloud Run ${size.cpu} vCPU ${size.memory} in ${cloudrun.region}`,
      ...(input.machine ? { machineType: input.machine } : {}),
    };
  }
  if (input.backend !== "gce") {
    const label = FREE[input.backend] ?? input.backend;
    return { backend: input.backend, kind: "free", spot: false, rateUsdPerHour: 0, source: "no cloud bill", label };
  }
  if (!gce) throw new Error("the gce backend is not configured (GCE_PROJECT), so its jobs cannot be priced");
  const machineType = input.machine ?? gce.machineType;
  const region = regionOf(gce.zones[0]!);
  const hour = estimate({ machineType, region, spot: gce.spot, seconds: 3600, diskGb: gce.diskGb, diskType: gce.diskType }, table);
  return {
    backend: "gce",
    kind: "metered",
    machineType,
    region,
    spot: gce.spot,
    diskGb: gce.diskGb,
    diskType: gce.diskType,
    // Compute and disk together: the budget has to hold both.
    rateUsdPerHour: hour.usd,
    source: hour.source,
    label: `${machineType}${gce.spot ? " spot" : ""} in ${region}`,
  };
}

/**
 * The pricing of the placement a worker really got, from what the gce backend records in its meta
 * (machine type, zone, provisioning model, disk); other backends' workers keep `fallback`.
 */
export function pricingOfWorker(worker: { meta: Record<string, string> }, fallback: JobPricing, table: PriceTable = bundledPriceTable): JobPricing {
  const { machineType, zone, provisioningModel } = worker.meta;
  if (fallback.kind !== "metered" || fallback.backend !== "gce" || !machineType || !zone) return fallback;
  const region = worker.meta.region ?? regionOf(zone);
  const spot = provisioningModel ? provisioningModel === "SPOT" : fallback.spot;
  const diskGb = worker.meta.diskGb ? Number(worker.meta.diskGb) : fallback.diskGb;
  const diskType = worker.meta.diskType ?? fallback.diskType;
  const hour = estimate({ machineType, region, spot, seconds: 3600, ...(diskGb ? { diskGb, diskType } : {}) }, table);
  return {
    ...fallback,
    machineType,
    region,
    spot,
    diskGb,
    diskType,
    rateUsdPerHour: hour.usd,
    source: hour.source,
    label: `${machineType}${spot ? " spot" : ""} in ${region}`,
  };
}

/** What `seconds` on this pricing costs, split like the bill. */
export function costOf(pricing: JobPricing, seconds: number, table: PriceTable = bundledPriceTable): { computeUsd: number; diskUsd: number; totalUsd: number } {
  if (pricing.kind === "free") return { computeUsd: 0, diskUsd: 0, totalUsd: 0 };
  // A Cloud Run task is billed per second of its life at one rate: no disk, no machine type to look up.
  if (pricing.backend === "cloudrun") {
    const computeUsd = (pricing.rateUsdPerHour * seconds) / 3600;
    return { computeUsd, diskUsd: 0, totalUsd: computeUsd };
  }
  const e = estimate(
    {
      machineType: pricing.machineType!,
      region: pricing.region!,
      spot: pricing.spot,
      seconds,
      ...(pricing.diskGb ? { diskGb: pricing.diskGb, diskType: pricing.diskType } : {}),
    },
    table,
  );
  return { computeUsd: e.breakdown.compute, diskUsd: e.breakdown.disk, totalUsd: e.usd };
}
