/**
 * The gce backend's VM lifecycle against a fake Compute Engine on 127.0.0.1, through the real
 * @google-cloud/compute client: what it sends (the exact insert body), and how it behaves when GCE
 * drops an answer, runs out of stock, refuses on quota, or forgets an instance. SSH is a stub
 * here (the contract suite in test/contract/gce.test.ts uses a real sshd).
 */
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGceBackend, GceCreateError, type GceBackendOptions } from "../../src/backends/gce/gce-backend.js";
import { requestIdFor } from "../../src/backends/gce/gce-names.js";
import { fingerprintOfKeyBlob } from "../../src/backends/gce/wait-for-ssh.js";
import type { Backend, JobSpec } from "../../src/backends/types.js";
import { startFakeGcp, type FakeGcp } from "../support/fake-gcp.js";
import { virtualClock } from "../support/virtual-clock.js";

const HOST_KEY_BLOB = randomBytes(51).toString("base64");
const FINGERPRINT = fingerprintOfKeyBlob(Buffer.from(HOST_KEY_BLOB, "base64"));
const ZONES = ["us-central1-a", "us-central1-b", "europe-west1-b"];
const INSERT = /\/zones\/[^/]+\/instances$/;
const never = new AbortController().signal;

let fake: FakeGcp;
let clock: ReturnType<typeof virtualClock>;

beforeAll(async () => {
  fake = await startFakeGcp({ zones: ZONES, hostKeys: { "ssh-ed25519": HOST_KEY_BLOB } });
});
afterAll(() => fake?.close());
beforeEach(() => {
  clock = virtualClock();
});
afterEach(() => {
  for (const i of fake.instances()) fake.removeInstance(i.zone, i.name);
  fake.requests.length = 0;
  fake.resetFaults();
});

function options(over: Partial<GceBackendOptions> = {}): GceBackendOptions {
  return {
    project: "test-project",
    zones: ZONES,
    machineType: "e2-standard-2",
    image: "projects/test-project/global/images/family/agent-work-worker",
    serviceAccount: "agent-work-worker@test-project.iam.gserviceaccount.com",
    network: "default",
    externalIp: false,
    networkTags: ["agent-work-worker"],
    diskGb: 20,
    diskType: "pd-balanced",
    envLabel: "test",
    spot: true,
    onDemandFallback: true,
    maxVms: 4,
    ssh: { username: "agent-work", privateKey: "unused here", port: 2222 },
    bootTimeoutSeconds: 180,
    runOnVm: async () => {
      throw new Error("no runs in these tests");
    },
    clientOptions: fake.clientOptions(),
    probe: async () => FINGERPRINT,
    clock,
    ...over,
  };
}

function backend(over: Partial<GceBackendOptions> = {}): Backend {
  return createGceBackend(options(over));
}

function job(over: Partial<JobSpec> = {}): JobSpec {
  return { jobId: `j${randomBytes(5).toString("hex")}`, repoFullName: "Octo/Demo.js", maxSeconds: 3600, ...over };
}

const inserts = () => fake.requestsTo("POST", INSERT);
const placementsTried = () => inserts().map((r) => `${r.path.split("/")[6]} ${r.body.scheduling.provisioningModel}`);

describe("the gce backend's insert", () => {
  it("sends exactly this body: labels, spot with a dead-man switch that deletes, Shielded VM, no external IP, no secrets", async () => {
    const spec = job();
    const worker = await backend().create(spec, never);
    const [insert] = inserts();
    const name = `agent-work-${spec.jobId}`;
    const expiresAt = String(Math.ceil(clock.now() / 1000) + 3600 + 180 + 120);
    const labels = { "agent-work-job": spec.jobId, "agent-work-repo": "octo_demo_js", "agent-work-expires-at": expiresAt, "agent-work-env": "test" };

    expect(insert!.query).toEqual({ requestId: requestIdFor(spec.jobId, "us-central1-a", "SPOT", "0") });
    expect(insert!.query.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(insert!.body).toEqual({
      name,
      description: `agent-work worker for job ${spec.jobId} (Octo/Demo.js); deletes itself after 3900s`,
      machineType: "zones/us-central1-a/machineTypes/e2-standard-2",
      labels,
      tags: { items: ["agent-work-worker"] },
      disks: [
        {
          boot: true,
          autoDelete: true,
          type: "PERSISTENT",
          initializeParams: {
            sourceImage: "projects/test-project/global/images/family/agent-work-worker",
            diskSizeGb: "20",
            diskType: "zones/us-central1-a/diskTypes/pd-balanced",
            labels,
            // The client's serializer sends the empty map; it adds no tag.
            resourceManagerTags: {},
          },
        },
      ],
      networkInterfaces: [{ network: "global/networks/default" }],
      serviceAccounts: [{ email: "agent-work-worker@test-project.iam.gserviceaccount.com", scopes: ["https://www.googleapis.com/auth/cloud-platform"] }],
      scheduling: {
        provisioningModel: "SPOT",
        instanceTerminationAction: "DELETE",
        maxRunDuration: { seconds: "3900" },
        automaticRestart: false,
        onHostMaintenance: "TERMINATE",
      },
      shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
      metadata: {
        items: [
          { key: "enable-oslogin", value: "TRUE" },
          { key: "block-project-ssh-keys", value: "TRUE" },
          { key: "enable-guest-attributes", value: "TRUE" },
          { key: "serial-port-enable", value: "FALSE" },
        ],
      },
      deletionProtection: false,
    });
    expect(worker).toMatchObject({
      id: name,
      backend: "gce",
      jobId: spec.jobId,
      meta: {
        zone: "us-central1-a",
        region: "us-central1",
        instanceName: name,
        machineType: "e2-standard-2",
        provisioningModel: "SPOT",
        host: "127.0.0.1",
        port: "2222",
        hostKeySha256: FINGERPRINT,
        expiresAt,
      },
    });
    expect(worker.createdAt).toBe(Date.parse(fake.instances()[0]!.creationTimestamp));
  });

  it("asks for an external IP only when configured to", async () => {
    await backend({ externalIp: true }).create(job(), never);
    expect(inserts()[0]!.body.networkInterfaces).toEqual([
      { network: "global/networks/default", accessConfigs: [{ name: "External NAT", type: "ONE_TO_ONE_NAT" }] },
    ]);
  });

  it("refuses to put anything shaped like a credential into metadata", async () => {
    const gce = backend({ startupScript: "#!/bin/sh\ngit clone https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r\n" });
    await expect(gce.create(job(), never)).rejects.toThrow(/refusing to put a credential into instance metadata \(startup-script\)/);
    expect(inserts()).toHaveLength(0);
  });
});

describe("creating a VM is idempotent on the job id", () => {
  it("adopts the VM when the insert's answer is lost and the retry reuses its requestId", async () => {
    fake.dropResponse({ method: "POST", path: INSERT });
    const spec = job();
    const worker = await backend().create(spec, never);
    const [first, second] = inserts();
    expect(inserts()).toHaveLength(2);
    expect(second!.query.requestId).toBe(first!.query.requestId);
    expect(fake.instances().map((i) => i.name)).toEqual([worker.id]);
  });

  it("retries 503, 503 and makes one VM (R22)", async () => {
    fake.failNext({ method: "POST", path: INSERT }, 503, { error: { code: 503, message: "Backend Error", errors: [{ reason: "backendError" }] } }, 2);
    await backend().create(job(), never);
    expect(inserts()).toHaveLength(3);
    expect(new Set(inserts().map((r) => r.query.requestId)).size).toBe(1);
    expect(fake.instances()).toHaveLength(1);
    expect(clock.slept.length).toBeGreaterThanOrEqual(2);
  });

  it("a second create for the same job adopts the first VM without inserting", async () => {
    const spec = job();
    const gce = backend();
    const first = await gce.create(spec, never);
    const second = await gce.create(spec, never);
    expect(second).toEqual(first);
    expect(inserts()).toHaveLength(1);
  });

  it("a controller that restarts adopts the VM its predecessor made", async () => {
    const spec = job();
    const first = await backend().create(spec, never);
    const second = await backend().create(spec, never);
    expect(second.id).toBe(first.id);
    expect(fake.instances()).toHaveLength(1);
  });

  it("replaces a preempted spot VM instead of adopting it", async () => {
    const spec = job();
    const gce = backend();
    await gce.create(spec, never);
    fake.instances()[0]!.status = "TERMINATED";
    await gce.create(spec, never);
    expect(fake.instances()).toHaveLength(1);
    expect(fake.instances()[0]!.status).toBe("RUNNING");
    expect(fake.requestsTo("DELETE", /\/instances\//)).toHaveLength(1);
  });

  it("inserts again when GCE replays an earlier insert whose VM has since been deleted", async () => {
    const spec = job();
    const gce = backend();
    const first = await gce.create(spec, never);
    await gce.destroy(first);
    const again = await gce.create(spec, never);
    expect(again.id).toBe(first.id);
    expect(fake.instances()).toHaveLength(1);
    const ids = inserts().map((r) => r.query.requestId);
    expect(ids).toEqual([
      requestIdFor(spec.jobId, "us-central1-a", "SPOT", "0"),
      requestIdFor(spec.jobId, "us-central1-a", "SPOT", "0"),
      requestIdFor(spec.jobId, "us-central1-a", "SPOT", "1"),
    ]);
  });

  it("waits for slow zone operations", async () => {
    fake.setOperationPolls(4);
    await backend().create(job(), never);
    expect(fake.requestsTo("POST", /\/operations\/[^/]+\/wait$/).length).toBe(4);
  });
});

describe("when a zone cannot take the VM", () => {
  it("moves to the next zone on ZONE_RESOURCE_POOL_EXHAUSTED, with a new requestId", async () => {
    fake.failPlacement({ zone: "us-central1-a", code: "ZONE_RESOURCE_POOL_EXHAUSTED", times: 1 });
    const worker = await backend().create(job(), never);
    expect(placementsTried()).toEqual(["us-central1-a SPOT", "us-central1-b SPOT"]);
    expect(new Set(inserts().map((r) => r.query.requestId)).size).toBe(2);
    expect(worker.meta.zone).toBe("us-central1-b");
    expect(fake.instances().map((i) => i.zone)).toEqual(["us-central1-b"]);
  });

  it("moves to the next zone on a quota error, whether the insert or its operation says so", async () => {
    fake.failPlacement({ zone: "us-central1-a", code: "QUOTA_EXCEEDED", synchronousStatus: 403, times: 1 });
    fake.failPlacement({ zone: "us-central1-b", code: "QUOTA_EXCEEDED", times: 1 });
    const worker = await backend().create(job(), never);
    expect(placementsTried()).toEqual(["us-central1-a SPOT", "us-central1-b SPOT", "europe-west1-b SPOT"]);
    expect(worker.meta.zone).toBe("europe-west1-b");
  });

  it("falls back from spot to on-demand when no zone has spot capacity", async () => {
    fake.failPlacement({ provisioningModel: "SPOT", code: "ZONE_RESOURCE_POOL_EXHAUSTED" });
    const worker = await backend().create(job(), never);
    expect(placementsTried()).toEqual(["us-central1-a SPOT", "us-central1-b SPOT", "europe-west1-b SPOT", "us-central1-a STANDARD"]);
    expect(worker.meta.provisioningModel).toBe("STANDARD");
    expect(inserts().at(-1)!.body.scheduling).toEqual({
      provisioningModel: "STANDARD",
      instanceTerminationAction: "DELETE",
      maxRunDuration: { seconds: "3900" },
      automaticRestart: false,
      onHostMaintenance: "MIGRATE",
    });
  });

  it("says the job can be retried later when every zone is out of stock and on-demand is not allowed", async () => {
    for (const zone of ZONES) fake.failPlacement({ zone, code: "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", times: 1 });
    const err = await backend({ onDemandFallback: false })
      .create(job(), never)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GceCreateError);
    expect((err as GceCreateError).retryable).toBe(true);
    expect((err as GceCreateError).message).toMatch(/us-central1-a spot: ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS; us-central1-b spot/);
    expect((err as GceCreateError).attempts).toHaveLength(3);
    expect(fake.instances()).toHaveLength(0);
  });

  it("fails without retrying when a quota is exhausted everywhere, and says which knob to turn", async () => {
    fake.failPlacement({ code: "QUOTA_EXCEEDED", times: 6 });
    const err = (await backend()
      .create(job(), never)
      .catch((e: unknown) => e)) as GceCreateError;
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/A quota is exhausted: raise it/);
    expect(inserts()).toHaveLength(6);
  });

  it("stops at once on a fatal error instead of trying other zones", async () => {
    fake.failNext({ method: "POST", path: INSERT }, 403, {
      error: { code: 403, message: "Required 'compute.instances.create' permission", errors: [{ reason: "forbidden" }] },
    });
    const err = (await backend()
      .create(job(), never)
      .catch((e: unknown) => e)) as GceCreateError;
    expect(err).toBeInstanceOf(GceCreateError);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/compute\.instances\.create/);
    expect(inserts()).toHaveLength(1);
  });
});

describe("a VM that never becomes usable", () => {
  it("is deleted when SSH does not answer before the boot deadline", async () => {
    const gce = backend({ probe: async () => Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })) });
    const err = (await gce.create(job(), never).catch((e: unknown) => e)) as GceCreateError;
    expect(err.message).toMatch(/did not become usable: SSH on 127\.0\.0\.1:2222 did not answer before the boot deadline \(last error: connect ECONNREFUSED\)/);
    expect(fake.instances()).toHaveLength(0);
    expect(clock.slept.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(170_000);
  });

  it("is refused and deleted when its SSH host key is not one its guest agent published", async () => {
    const gce = backend({ probe: async () => "SHA256:someoneElsesKey" });
    const err = (await gce.create(job(), never).catch((e: unknown) => e)) as GceCreateError;
    expect(err.message).toMatch(/showed SSH host key SHA256:someoneElsesKey, which is not among the keys its guest agent published/);
    expect(err.retryable).toBe(false);
    expect(fake.instances()).toHaveLength(0);
  });

  it("is deleted when the create is cancelled while GCE is still working", async () => {
    fake.setOperationPolls(1000);
    const ac = new AbortController();
    const cancelling: typeof clock = {
      ...clock,
      async sleep(ms, signal) {
        if (clock.slept.length === 3) {
          ac.abort(new Error("cancelled by /agent stop"));
          fake.setOperationPolls(1);
        }
        return clock.sleep(ms, signal);
      },
    };
    await expect(backend({ clock: cancelling }).create(job(), ac.signal)).rejects.toThrow(/cancelled by \/agent stop/);
    expect(fake.requestsTo("DELETE", /\/instances\//)).toHaveLength(1);
    expect(fake.instances()).toHaveLength(0);
  });
});

describe("destroy and list", () => {
  it("destroy deletes the VM, and deleting it again (404) succeeds", async () => {
    const gce = backend();
    const worker = await gce.create(job(), never);
    await gce.destroy(worker);
    expect(fake.instances()).toHaveLength(0);
    await expect(gce.destroy(worker)).resolves.toBeUndefined();
    expect(fake.requestsTo("DELETE", /\/instances\//)).toHaveLength(2);
  });

  it("destroy succeeds when the delete's answer is lost (the retry gets 404)", async () => {
    const gce = backend();
    const worker = await gce.create(job(), never);
    fake.dropResponse({ method: "DELETE", path: /\/instances\// });
    fake.setOperationPolls(1);
    await gce.destroy(worker);
    expect(fake.requestsTo("DELETE", /\/instances\//).length).toBeGreaterThanOrEqual(1);
  });

  it("destroy of a worker known only by its job id finds the VM by its labels", async () => {
    const gce = backend();
    const worker = await gce.create(job(), never);
    await gce.destroy({ id: "whatever", backend: "gce", jobId: worker.jobId, createdAt: 0, meta: {} });
    expect(fake.instances()).toHaveLength(0);
  });

  it("list shows only this deployment's labelled VMs, and capacity counts them", async () => {
    const gce = backend();
    const worker = await gce.create(job(), never);
    fake.seedInstance({ name: "agent-work-other-env", zone: "us-central1-b", labels: { "agent-work-job": "other", "agent-work-env": "prod" } });
    fake.seedInstance({ name: "someone-elses-vm", zone: "us-central1-b", labels: {} });
    fake.seedInstance({ name: "agent-work-jorphan", zone: "europe-west1-b", labels: { "agent-work-job": "jorphan", "agent-work-env": "test" } });
    const listed = await gce.list();
    expect(listed.map((w) => w.id).sort()).toEqual([worker.id, "agent-work-jorphan"].sort());
    expect(listed.find((w) => w.id === "agent-work-jorphan")).toMatchObject({ jobId: "jorphan", backend: "gce", meta: { zone: "europe-west1-b" } });
    expect(await gce.capacity()).toEqual({ max: 4, active: 2 });
  });
});

describe("the dead-man switch (R15)", () => {
  it("a VM whose controller is gone is deleted by GCE at its maxRunDuration, and destroying it later succeeds", async () => {
    let now = Date.now();
    const own = await startFakeGcp({ zones: ZONES, hostKeys: { "ssh-ed25519": HOST_KEY_BLOB }, now: () => now });
    try {
      const gce = backend({ clientOptions: own.clientOptions() });
      const worker = await gce.create(job({ maxSeconds: 600 }), never);
      // The controller dies here. GCE counts 600 + 180 (boot) + 120 (grace) seconds from the start.
      now += 899_000;
      expect(own.enforceMaxRunDuration()).toHaveLength(0);
      now += 1000;
      expect(own.enforceMaxRunDuration().map((i) => i.name)).toEqual([worker.id]);
      const restarted = backend({ clientOptions: own.clientOptions() });
      expect(await restarted.list()).toEqual([]);
      await expect(restarted.destroy(worker)).resolves.toBeUndefined();
    } finally {
      await own.close();
    }
  });
});
