import { describe, expect, it } from "vitest";
import { estimate } from "../../src/cost/estimate.js";
import { gceCostCeiling, gceWorkerCost } from "../../src/backends/gce/gce-cost.js";
import { gceCeilingSettings, gceOptionsFromConfig } from "../../src/backends/gce/options-from-config.js";
import type { Worker } from "../../src/backends/types.js";

const created = Date.parse("2026-07-30T10:00:00Z");
function worker(meta: Record<string, string>): Worker {
  return {
    id: "agent-work-j1",
    backend: "gce",
    jobId: "j1",
    createdAt: created,
    meta: { zone: "us-central1-a", region: "us-central1", machineType: "e2-standard-2", diskGb: "20", diskType: "pd-balanced", ...meta },
  };
}

describe("the cost of a gce job", () => {
  it("is the VM's lifetime at the price it ran at, plus its disk", () => {
    const cost = gceWorkerCost(worker({ provisioningModel: "SPOT" }), created + 15 * 60_000);
    const expected = estimate({ machineType: "e2-standard-2", region: "us-central1", spot: true, seconds: 900, diskGb: 20, diskType: "pd-balanced" });
    expect(cost.seconds).toBe(900);
    expect(cost.usd).toBeCloseTo(expected.usd, 10);
    expect(cost.breakdown.disk).toBeGreaterThan(0);
    expect(cost.text).toMatch(/^\$0\.\d\d \(e2-standard-2 spot in us-central1, 15 min VM \+ 20 GB pd-balanced disk\)$|^<\$0\.01 /);
  });

  it("prices an on-demand fallback VM as on-demand", () => {
    const spot = gceWorkerCost(worker({ provisioningModel: "SPOT" }), created + 3600_000);
    const onDemand = gceWorkerCost(worker({ provisioningModel: "STANDARD" }), created + 3600_000);
    expect(onDemand.usd).toBeGreaterThan(spot.usd);
    expect(onDemand.text).toContain("on-demand");
  });

  it("refuses a worker that is not from gce", () => {
    expect(() => gceWorkerCost({ id: "local-j1", backend: "local", jobId: "j1", createdAt: 0, meta: {} }, 1)).toThrow(/not a gce worker/);
  });
});

describe("the cost ceiling of a gce job", () => {
  const settings = {
    machineType: "e2-standard-2",
    zones: ["us-central1-a", "europe-west1-b"],
    spot: true,
    onDemandFallback: true,
    diskGb: 20,
    diskType: "pd-balanced",
    bootTimeoutSeconds: 300,
  };

  it("assumes the dearest allowed price for the whole dead-man switch", () => {
    const ceiling = gceCostCeiling(settings, 1800);
    const seconds = 1800 + 300 + 120;
    const candidates = ["us-central1", "europe-west1"].flatMap((region) =>
      [true, false].map((spot) => estimate({ machineType: "e2-standard-2", region, spot, seconds, diskGb: 20, diskType: "pd-balanced" }).usd),
    );
    expect(ceiling.usd).toBeCloseTo(Math.max(...candidates), 10);
    expect(ceiling.text).toMatch(/^at most \$\d+\.\d\d \(e2-standard-2 on-demand in (us-central1|europe-west1), 37 min including boot\)$/);
  });

  it("stays at spot prices when on-demand is not allowed", () => {
    expect(gceCostCeiling({ ...settings, onDemandFallback: false }, 1800).text).toContain(" spot in ");
  });
});

describe("the gce backend's options from GCE_* configuration", () => {
  it("carries every setting across, and prices the ceiling from the same values", () => {
    const config = {
      project: "p-123456",
      zones: ["europe-west1-b"],
      machineType: "e2-small",
      image: "projects/p-123456/global/images/family/agent-work-worker",
      serviceAccount: "agent-work-worker@p-123456.iam.gserviceaccount.com",
      spot: false,
      onDemandFallback: true,
      network: "default",
      subnetwork: "regions/europe-west1/subnetworks/w",
      externalIp: false,
      networkTags: ["agent-work-worker"],
      diskGb: 30,
      diskType: "pd-ssd" as const,
      envLabel: "prod",
      maxVms: 3,
      sshUser: "agent-work",
      sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----",
      bootTimeoutSeconds: 200,
      startupScript: "#!/bin/sh\n",
    };
    expect(gceOptionsFromConfig(config)).toEqual({
      project: "p-123456",
      zones: ["europe-west1-b"],
      machineType: "e2-small",
      image: config.image,
      serviceAccount: config.serviceAccount,
      network: "default",
      subnetwork: "regions/europe-west1/subnetworks/w",
      externalIp: false,
      networkTags: ["agent-work-worker"],
      diskGb: 30,
      diskType: "pd-ssd",
      envLabel: "prod",
      spot: false,
      onDemandFallback: true,
      maxVms: 3,
      ssh: { username: "agent-work", privateKey: config.sshPrivateKey },
      bootTimeoutSeconds: 200,
      startupScript: "#!/bin/sh\n",
    });
    expect(gceCostCeiling(gceCeilingSettings(config), 600).text).toMatch(/e2-small on-demand in europe-west1, 15 min 20 s including boot/);
  });
});
