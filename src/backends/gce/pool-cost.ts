/**
 * What the warm pool costs while it waits, per hour and per month (730 h), from the bundled price
 * table: every parked VM keeps its boot disk, and a suspended one also its saved memory and device
 * state. Compute is not billed while a VM is suspended or stopped.
 *
 * The table has no price for suspended memory, so it is priced here as pd-standard storage in the
 * VM's region (an assumption, stated wherever the figure is shown; check the Compute Engine
 * pricing page for "suspended"), and the memory of a predefined machine type comes from its name
 * (e2-standard-N has 4N GB, highmem 8N, highcpu N; e2-micro/small/medium 1/2/4). A type the name
 * does not give is priced for its disk only, and the result says so.
 */
import type { PriceTable } from "../../cost/price-table.js";
import { bundledPriceTable } from "../../cost/price-table.js";
import { regionOfZone } from "./gce-names.js";

const HOURS_PER_MONTH = 730;
const SHARED_CORE_GB: Record<string, number> = { "e2-micro": 1, "e2-small": 2, "e2-medium": 4, "f1-micro": 0.6, "g1-small": 1.7 };
const GB_PER_VCPU: Record<string, number> = { standard: 4, highmem: 8, highcpu: 1 };

/** GB of memory of a predefined machine type, from its name; null when the name does not say. */
export function memoryGbOf(machineType: string): number | null {
  if (SHARED_CORE_GB[machineType] !== undefined) return SHARED_CORE_GB[machineType]!;
  const m = /^(e2|n1|n2|n2d|t2d|c2d|c3)-(standard|highmem|highcpu)-(\d+)$/.exec(machineType);
  if (!m) return null;
  // n1-standard has 3.75 GB per vCPU; the rest of these families 4 (standard), 8 and 1 (n1-highcpu 0.9).
  if (m[1] === "n1") return Number(m[3]) * ({ standard: 3.75, highmem: 6.5, highcpu: 0.9 } as Record<string, number>)[m[2]!]!;
  return Number(m[3]) * GB_PER_VCPU[m[2]!]!;
}

export interface PoolIdleCost {
  usdPerHour: number;
  usdPerMonth: number;
  /** e.g. "2 × e2-standard-2 in us-central1-a, suspended: 20 GB pd-balanced disk + 8 GB saved memory each". */
  text: string;
  /** Set when part of the figure rests on an assumption (the suspended-memory rate) or is missing. */
  caveat?: string;
}

export function poolIdleCost(
  pool: { machineType: string; zone: string; size: number }[],
  settings: { diskGb: number; diskType: string; park: "suspend" | "stop" },
  table: PriceTable = bundledPriceTable,
): PoolIdleCost {
  let usdPerMonth = 0;
  const parts: string[] = [];
  const caveats = new Set<string>();
  for (const entry of pool.filter((e) => e.size > 0)) {
    const region = regionOfZone(entry.zone);
    const diskRate = (table.disks as Record<string, Record<string, number>>)[settings.diskType]?.[region];
    if (diskRate === undefined) throw new Error(`no ${settings.diskType} price for ${region} in ${table.source.file}`);
    let each = diskRate * settings.diskGb;
    let memory = "";
    if (settings.park === "suspend") {
      const gb = memoryGbOf(entry.machineType);
      const memRate = table.disks["pd-standard" as keyof typeof table.disks]?.[region];
      if (gb === null || memRate === undefined) {
        caveats.add(`the saved memory of ${entry.machineType} is not included (its size is not known here)`);
      } else {
        each += gb * memRate;
        memory = ` + ${gb} GB saved memory`;
        caveats.add("suspended memory is priced as pd-standard storage (an assumption: the price table has no rate for it)");
      }
    }
    usdPerMonth += each * entry.size;
    parts.push(
      `${entry.size} × ${entry.machineType} in ${entry.zone}, ${settings.park === "suspend" ? "suspended" : "stopped"}: ${settings.diskGb} GB ${settings.diskType} disk${memory} each`,
    );
  }
  const caveat = [...caveats].join("; ");
  return { usdPerHour: usdPerMonth / HOURS_PER_MONTH, usdPerMonth, text: parts.join("; ") || "no pool", ...(caveat ? { caveat } : {}) };
}
