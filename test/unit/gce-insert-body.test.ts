import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildInstanceBody, MAX_RUN_SECONDS, MIN_RUN_SECONDS, type InstanceSettings } from "../../src/backends/gce/build-instance.js";
import { instanceName, jobIdOfInstance, labelValue, requestIdFor } from "../../src/backends/gce/gce-names.js";

const settings: InstanceSettings = {
  machineType: "e2-standard-2",
  image: "projects/p/global/images/family/agent-work-worker",
  serviceAccount: "agent-work-worker@p.iam.gserviceaccount.com",
  network: "default",
  externalIp: false,
  networkTags: ["agent-work-worker"],
  diskGb: 20,
  diskType: "pd-balanced",
  envLabel: "prod",
};

const plans = fc.record({
  jobId: fc.stringMatching(/^j[a-z0-9]{11}$/),
  repoFullName: fc.tuple(fc.stringMatching(/^[A-Za-z0-9-]{1,39}$/), fc.stringMatching(/^[A-Za-z0-9._-]{1,100}$/)).map(([o, r]) => `${o}/${r}`),
  zone: fc.constantFrom("us-central1-a", "europe-west1-b", "asia-east1-c"),
  provisioningModel: fc.constantFrom("SPOT" as const, "STANDARD" as const),
  maxRunSeconds: fc.integer({ min: MIN_RUN_SECONDS, max: 6 * 3600 }),
  externalIp: fc.boolean(),
});

describe("every insert body (R15, R18, R19)", () => {
  it("deletes itself at its maxRunDuration, auto-deletes its disk, is Shielded, runs as the role-less account, and carries no secret", () => {
    fc.assert(
      fc.property(plans, (p) => {
        const body = buildInstanceBody({ ...settings, externalIp: p.externalIp }, { ...p, name: instanceName(p.jobId), now: 1_700_000_000_000 });
        expect(body.scheduling).toMatchObject({
          instanceTerminationAction: "DELETE",
          maxRunDuration: { seconds: p.maxRunSeconds },
          automaticRestart: false,
          provisioningModel: p.provisioningModel,
        });
        expect(body.disks?.every((d) => d.autoDelete === true)).toBe(true);
        expect(body.shieldedInstanceConfig).toEqual({ enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true });
        expect(body.serviceAccounts?.map((a) => a.email)).toEqual([settings.serviceAccount]);
        expect(body.serviceAccounts?.[0]?.email).not.toMatch(/-compute@developer\.gserviceaccount\.com$/);
        expect(body.networkInterfaces?.[0]?.accessConfigs !== undefined).toBe(p.externalIp);
        const metadata = Object.fromEntries((body.metadata?.items ?? []).map((i) => [i.key, i.value]));
        expect(metadata).toMatchObject({ "enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE" });
        expect(Object.keys(metadata)).not.toContain("startup-script");
        for (const value of Object.values(body.labels ?? {})) expect(value).toMatch(/^[a-z0-9_-]{1,63}$/);
        expect(body.labels?.["agent-work-job"]).toBe(p.jobId);
      }),
    );
  });

  it("refuses a maxRunDuration GCE would refuse", () => {
    for (const seconds of [0, 29, MAX_RUN_SECONDS + 1, 100.5]) {
      expect(() =>
        buildInstanceBody(settings, {
          name: "agent-work-j1",
          jobId: "j1",
          repoFullName: "o/r",
          zone: "us-central1-a",
          provisioningModel: "SPOT",
          maxRunSeconds: seconds,
          now: 0,
        }),
      ).toThrow(RangeError);
    }
  });
});

describe("names derived from the job id", () => {
  it("round-trip between job id and instance name, and refuse ids that cannot name a VM", () => {
    expect(instanceName("jabc123")).toBe("agent-work-jabc123");
    expect(jobIdOfInstance("agent-work-jabc123")).toBe("jabc123");
    expect(jobIdOfInstance("someone-else")).toBeNull();
    for (const bad of ["", "Upper", "under_score", "x".repeat(60), "ends-with-dash-"])
      expect(() => instanceName(bad), bad).toThrow(/cannot name a GCE instance/);
  });

  it("give the same requestId for the same attempt and a different one for any other", () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { minLength: 1, maxLength: 4 }), fc.array(fc.string(), { minLength: 1, maxLength: 4 }), (a, b) => {
        const id = requestIdFor(...a);
        expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(requestIdFor(...a)).toBe(id);
        if (a.join("\u0000") !== b.join("\u0000")) expect(requestIdFor(...b)).not.toBe(id);
      }),
    );
  });

  it("fold any text into a valid label value", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(labelValue(s)).toMatch(/^[a-z0-9_-]{1,63}$/);
      }),
    );
  });
});
