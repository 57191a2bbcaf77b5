import { describe, expect, it } from "vitest";
import { costOf, priceJob, pricingOfWorker } from "../../src/cost/price-job.js";

const cloudrun = { region: "us-central1", cpu: "1", memory: "2Gi" };

describe("pricing a Cloud Run job", () => {
  it("charges the vCPU-seconds and GiB-seconds of the task's size from the bundled table", () => {
    const pricing = priceJob({ backend: "cloudrun" }, undefined, undefined, cloudrun);
    // 1 vCPU × $0.000018 + 2 GiB × $0.000002 a second.
    expect(pricing).toMatchObject({
      backend: "cloudrun",
      kind: "metered",
      region: "us-central1",
      label: "Cloud Run 1 vCPU 2Gi in us-central1",
      source: expect.stringMatching(/^Cloud Run pricing \d{4}-\d\d-\d\d \(tier1\)$/),
    });
    expect(pricing.rateUsdPerHour).toBeCloseTo(0.0792, 10);
    expect(costOf(pricing, 600)).toEqual({ computeUsd: expect.closeTo(0.0132, 10), diskUsd: 0, totalUsd: expect.closeTo(0.0132, 10) });
  });

  it("sizes a job that names a GCE machine type as Cloud Run would run it", () => {
    const pricing = priceJob({ backend: "cloudrun", machine: "e2-standard-4" }, undefined, undefined, cloudrun);
    expect(pricing.label).toBe("Cloud Run 4 vCPU 16Gi in us-central1");
    expect(pricing.rateUsdPerHour).toBeCloseTo((4 * 0.000018 + 16 * 0.000002) * 3600, 10);
  });

  it("keeps its rate for the worker it got, and refuses a region the table does not price", () => {
    const pricing = priceJob({ backend: "cloudrun" }, undefined, undefined, cloudrun);
    expect(pricingOfWorker({ meta: { jobName: "agent-work-x" } }, pricing)).toBe(pricing);
    expect(() => priceJob({ backend: "cloudrun" }, undefined, undefined, { ...cloudrun, region: "mars-north1" })).toThrow(/no price for mars-north1/);
    expect(() => priceJob({ backend: "cloudrun" }, undefined)).toThrow(/CLOUDRUN_PROJECT/);
  });
});
