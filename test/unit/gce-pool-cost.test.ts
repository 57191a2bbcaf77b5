/** The warm pool's idle cost, from the bundled price table. */
import { describe, expect, it } from "vitest";
import { memoryGbOf, poolIdleCost } from "../../src/backends/gce/pool-cost.js";
import { bundledPriceTable } from "../../src/cost/price-table.js";
import { createMetrics } from "../../src/metrics/metrics.js";

const disk = (type: "pd-balanced" | "pd-standard", region: string) => bundledPriceTable.disks[type][region]!;

describe("the warm pool's idle cost", () => {
  it("is each parked VM's disk, and for a suspended one its saved memory too, per month and per hour", () => {
    const pool = [{ machineType: "e2-standard-2", zone: "us-central1-a", size: 2 }];
    const stopped = poolIdleCost(pool, { diskGb: 20, diskType: "pd-balanced", park: "stop" });
    expect(stopped.usdPerMonth).toBeCloseTo(2 * 20 * disk("pd-balanced", "us-central1"), 10);
    expect(stopped.usdPerHour).toBeCloseTo(stopped.usdPerMonth / 730, 12);
    expect(stopped.caveat).toBeUndefined();

    const suspended = poolIdleCost(pool, { diskGb: 20, diskType: "pd-balanced", park: "suspend" });
    expect(suspended.usdPerMonth).toBeCloseTo(2 * (20 * disk("pd-balanced", "us-central1") + 8 * disk("pd-standard", "us-central1")), 10);
    expect(suspended.text).toBe("2 × e2-standard-2 in us-central1-a, suspended: 20 GB pd-balanced disk + 8 GB saved memory each");
    expect(suspended.caveat).toMatch(/assumption/);
  });

  it("is nothing for no pool, and says so when a machine type's memory is not known", () => {
    expect(poolIdleCost([], { diskGb: 20, diskType: "pd-balanced", park: "suspend" }).usdPerMonth).toBe(0);
    const odd = poolIdleCost([{ machineType: "a2-highgpu-1g", zone: "us-central1-a", size: 1 }], { diskGb: 10, diskType: "pd-balanced", park: "suspend" });
    expect(odd.caveat).toMatch(/a2-highgpu-1g is not included/);
    expect(memoryGbOf("e2-highmem-4")).toBe(32);
    expect(memoryGbOf("n1-standard-1")).toBe(3.75);
  });
});

describe("/metrics", () => {
  it("shows the pool's idle cost per hour, and 0 without a pool", async () => {
    const idle = poolIdleCost([{ machineType: "e2-standard-2", zone: "us-central1-a", size: 2 }], {
      diskGb: 20,
      diskType: "pd-balanced",
      park: "suspend",
    }).usdPerHour;
    const text = await createMetrics(async () => ({}), { poolIdleUsdPerHour: idle }).registry.metrics();
    expect(text).toContain(`agent_work_gce_pool_idle_usd_per_hour ${idle}`);
    expect(await createMetrics(async () => ({})).registry.metrics()).toContain("agent_work_gce_pool_idle_usd_per_hour 0");
  });
});
