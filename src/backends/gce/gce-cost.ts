/**
 * What a gce job costs: the VM's list price for its whole lifetime (insert to delete, not only the
 * minutes the agent ran: boot and teardown are billed too) plus its boot disk, from the bundled
 * price table (src/cost). Spot and on-demand are priced as the VM actually ran, from its meta.
 */
import { estimate, formatUsd } from "../../cost/estimate.js";
import { bundledPriceTable, type PriceTable } from "../../cost/price-table.js";
import { formatDuration } from "../../jobs/format-duration.js";
import type { Worker } from "../types.js";
import { regionOfZone } from "./gce-names.js";

export interface GceCost {
  usd: number;
  /** Seconds the VM existed. */
  seconds: number;
  breakdown: { compute: number; disk: number };
  /** For the status comment, e.g. "$0.03 (e2-standard-2 spot in us-central1, 14 min VM + 20 GB pd-balanced disk)". */
  text: string;
}

/**
 * The cost of a gce worker from its creation (`worker.createdAt`, GCE's own timestamp) until
 * `endedAt` (epoch ms; when destroy() returned). Needs the meta create() and list() record.
 */
export function gceWorkerCost(worker: Worker, endedAt: number, table: PriceTable = bundledPriceTable): GceCost {
  const machineType = worker.meta.machineType;
  const zone = worker.meta.zone;
  if (!machineType || !zone) throw new Error(`worker ${worker.id} has no machine type or zone in its meta; it is not a gce worker`);
  const region = worker.meta.region ?? regionOfZone(zone);
  const spot = worker.meta.provisioningModel === "SPOT";
  const diskGb = Number(worker.meta.diskGb ?? 0);
  const diskType = worker.meta.diskType ?? "pd-balanced";
  const seconds = Math.max(0, (endedAt - worker.createdAt) / 1000);
  const e = estimate({ machineType, region, spot, seconds, diskGb, diskType }, table);
  const disk = diskGb > 0 ? ` + ${diskGb} GB ${diskType} disk` : "";
  return {
    usd: e.usd,
    seconds,
    breakdown: e.breakdown,
    text: `${formatUsd(e.usd)} (${machineType}${spot ? " spot" : " on-demand"} in ${region}, ${formatDuration(seconds)} VM${disk})`,
  };
}

export interface GceCeilingSettings {
  machineType: string;
  zones: string[];
  spot: boolean;
  onDemandFallback: boolean;
  diskGb: number;
  diskType: string;
  bootTimeoutSeconds: number;
  /** As the backend's option (default 120). */
  graceSeconds?: number;
}

/**
 * The most one job can cost: the dearest price it may run at (on-demand when the spot fallback is
 * allowed, in the dearest configured region) for the VM's whole dead-man switch (job limit + boot
 * + grace), disk included. GCE deletes the VM by then even if the controller is gone.
 */
export function gceCostCeiling(settings: GceCeilingSettings, jobMaxSeconds: number, table: PriceTable = bundledPriceTable): { usd: number; text: string } {
  const seconds = jobMaxSeconds + settings.bootTimeoutSeconds + (settings.graceSeconds ?? 120);
  const models = settings.spot ? (settings.onDemandFallback ? [true, false] : [true]) : [false];
  let worst: { usd: number; region: string; spot: boolean } | undefined;
  for (const region of new Set(settings.zones.map(regionOfZone))) {
    for (const spot of models) {
      const { usd } = estimate({ machineType: settings.machineType, region, spot, seconds, diskGb: settings.diskGb, diskType: settings.diskType }, table);
      if (!worst || usd > worst.usd) worst = { usd, region, spot };
    }
  }
  if (!worst) throw new Error("gceCostCeiling needs at least one zone");
  return {
    usd: worst.usd,
    text: `at most ${formatUsd(worst.usd)} (${settings.machineType}${worst.spot ? " spot" : " on-demand"} in ${worst.region}, ${formatDuration(seconds)} including boot)`,
  };
}
