/**
 * A hedged gce pool start (src/backends/gce/pool-take.ts) resumed a second VM for the job: the
 * job's bill has both, the second for the seconds recorded in the worker's meta, at the same price.
 */
import { describe, expect, it } from "vitest";
import type { ControllerConfig } from "../../src/config/env.js";
import { bundledPriceTable } from "../../src/cost/price-table.js";
import { Ledger } from "../../src/cost/ledger.js";
import { costOf, priceJob, pricingOfWorker } from "../../src/cost/price-job.js";
import { billWorker } from "../../src/pipeline/bill-worker.js";
import { useTestStores } from "../support/postgres.js";

const gce = { zones: ["us-central1-a"], machineType: "e2-standard-2", spot: true, diskGb: 20, diskType: "pd-balanced" as const };
const pricing = priceJob({ backend: "gce" }, gce);
const budgets = { jobUsd: 100, repoMonthlyUsd: 1000, globalHourlyUsd: 1000 };
const log = { error: () => undefined } as never;

describe("billing a hedged gce pool start", () => {
  const stores = useTestStores("sqlite");
  const t0 = Date.UTC(2026, 11, 5, 12);
  const job = { id: "j1", backend: "gce", options: {} } as never;
  const meta = { machineType: "e2-standard-2", zone: "us-central1-a", provisioningModel: "SPOT", diskGb: "20", diskType: "pd-balanced" };

  async function billed(extra: Record<string, string>) {
    const ledger = new Ledger(await stores.fresh(), () => t0);
    await ledger.reserve({ jobId: "j1", repoId: 1, repoFullName: "o/r", pricing, ceilingUsd: 1, budgets });
    const deps = { ledger, config: { gce } as unknown as ControllerConfig, priceTable: bundledPriceTable, log };
    const worker = { id: "agent-work-pool-a", createdAt: t0, meta: { ...meta, ...extra } };
    const bill = await billWorker(deps, job, worker, t0 + 600_000);
    return { bill, final: await ledger.finalize("j1"), perSecond: costOf(pricingOfWorker(worker, pricing), 1).totalUsd };
  }

  it("bills the other VM's recorded seconds on top of the job's own VM", async () => {
    const { bill, final, perSecond } = await billed({ hedgeVm: "agent-work-pool-b", hedgeResumedAt: String(t0 - 2000), hedgeBilledSeconds: "120" });
    expect(bill).toMatchObject({ billedSeconds: 600 + 120 });
    expect(final.billedSeconds).toBe(720);
    expect(final.totalUsd).toBeCloseTo(perSecond * 720, 10);
  });

  it("bills only the job's VM when the start was not hedged, or its meta is not a number", async () => {
    expect((await billed({})).final.billedSeconds).toBe(600);
    expect((await billed({ hedgeVm: "agent-work-pool-b", hedgeResumedAt: "soon", hedgeBilledSeconds: "120" })).final.billedSeconds).toBe(600);
  });
});
