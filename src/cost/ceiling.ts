import { estimate, formatUsd } from "./estimate.js";
import { bundledPriceTable, type PriceTable } from "./price-table.js";

export interface CeilingInput {
  backend: string;
  machineType?: string;
  region?: string;
  spot?: boolean;
  /** The job's hard time limit; the worker is destroyed when it runs out. */
  maxMinutes: number;
}

/** The most a job can cost if it runs until its time limit, for showing before it starts. */
export function costCeiling(input: CeilingInput, table: PriceTable = bundledPriceTable): { usd: number; text: string } {
  const { backend, machineType, region, maxMinutes } = input;
  if (backend === "local") return { usd: 0, text: `$0 (local; at most ${maxMinutes} min of compute)` };
  if (backend !== "gce") {
    throw new Error(`No cost model for backend "${backend}"; only local and gce have one`);
  }
  if (!machineType || !region) {
    throw new Error(
      `A gce cost ceiling needs a machine type and a region (got ${machineType ?? "no machine type"}, ` +
        `${region ?? "no region"}); set them in the gce backend's configuration`,
    );
  }
  const spot = input.spot ?? false;
  const { usd } = estimate({ machineType, region, spot, seconds: maxMinutes * 60 }, table);
  return {
    usd,
    text: `at most ${formatUsd(usd)} (${machineType}${spot ? " spot" : ""} in ${region}, ${maxMinutes} min)`,
  };
}
