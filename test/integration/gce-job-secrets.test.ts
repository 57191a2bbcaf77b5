/**
 * Per-job Secret Manager secrets (R13) and the controller's own secret reads, through the real
 * @google-cloud/secret-manager client against the fake on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGceBackend } from "../../src/backends/gce/gce-backend.js";
import { createJobSecrets, readSecrets, SECRET_ACCESSOR_ROLE, type JobSecrets } from "../../src/backends/gce/job-secrets.js";
import { startFakeGcp, type FakeGcp } from "../support/fake-gcp.js";
import { virtualClock } from "../support/virtual-clock.js";

const WORKER_SA = "agent-work-worker@test-project.iam.gserviceaccount.com";
let fake: FakeGcp;
let secrets: JobSecrets;

beforeAll(async () => {
  fake = await startFakeGcp();
  secrets = createJobSecrets({
    project: "test-project",
    serviceAccount: WORKER_SA,
    envLabel: "prod",
    clientOptions: fake.clientOptions(),
    clock: virtualClock(),
  });
});
afterAll(() => fake?.close());

describe("a job's secret", () => {
  it("expires on its own, is readable only by the workers' service account, and holds the value", async () => {
    const name = await secrets.put("jsecret1", "ghs_canaryTokenValue0000000000000000000", { ttlSeconds: 3900, repoFullName: "octo/demo" });
    expect(name).toBe("projects/test-project/secrets/agent-work-job-jsecret1");
    const [create] = fake.requestsTo("POST", /\/v1\/projects\/test-project\/secrets$/);
    expect(create!.query.secretId).toBe("agent-work-job-jsecret1");
    expect(create!.body).toMatchObject({
      ttl: "3900s",
      replication: { automatic: {} },
      labels: { "agent-work-job": "jsecret1", "agent-work-env": "prod", "agent-work-repo": "octo_demo" },
    });
    const secret = fake.secrets().find((s) => s.name === name)!;
    expect(secret.policy.bindings).toEqual([{ role: SECRET_ACCESSOR_ROLE, members: [`serviceAccount:${WORKER_SA}`] }]);
    expect(Buffer.from(secret.versions[0]!.data, "base64").toString()).toBe("ghs_canaryTokenValue0000000000000000000");
  });

  it("is adopted by a retried put, with its policy set again to the one reader", async () => {
    await secrets.put("jsecret2", "v1", { ttlSeconds: 600 });
    fake
      .secrets()
      .find((s) => s.name.endsWith("jsecret2"))!
      .policy.bindings.push({ role: SECRET_ACCESSOR_ROLE, members: ["user:intruder@example.com"] });
    await secrets.put("jsecret2", "v2", { ttlSeconds: 600 });
    const secret = fake.secrets().find((s) => s.name.endsWith("jsecret2"))!;
    expect(secret.policy.bindings).toEqual([{ role: SECRET_ACCESSOR_ROLE, members: [`serviceAccount:${WORKER_SA}`] }]);
    expect(secret.versions).toHaveLength(2);
  });

  it("is listed for sweeps and deleted at teardown; deleting it twice succeeds", async () => {
    await secrets.put("jsecret3", "x", { ttlSeconds: 600 });
    expect((await secrets.list()).map((s) => s.jobId)).toEqual(expect.arrayContaining(["jsecret1", "jsecret2", "jsecret3"]));
    await secrets.remove("jsecret3");
    await expect(secrets.remove("jsecret3")).resolves.toBeUndefined();
    expect((await secrets.list()).map((s) => s.jobId)).not.toContain("jsecret3");
  });

  it("is deleted by the backend's destroy, even when the VM is already gone", async () => {
    await secrets.put("jsecret4", "x", { ttlSeconds: 600 });
    const backend = createGceBackend({
      project: "test-project",
      zones: ["us-central1-a"],
      machineType: "e2-small",
      image: "projects/test-project/global/images/family/agent-work-worker",
      serviceAccount: WORKER_SA,
      network: "default",
      externalIp: false,
      networkTags: [],
      diskGb: 10,
      diskType: "pd-standard",
      envLabel: "prod",
      spot: true,
      onDemandFallback: false,
      maxVms: 1,
      ssh: { username: "agent-work", privateKey: "unused" },
      bootTimeoutSeconds: 60,
      jobSecrets: secrets,
      clientOptions: fake.clientOptions(),
      clock: virtualClock(),
    });
    await backend.destroy({
      id: "agent-work-jsecret4",
      backend: "gce",
      jobId: "jsecret4",
      createdAt: 0,
      meta: { zone: "us-central1-a", instanceName: "agent-work-jsecret4" },
    });
    expect(fake.secrets().map((s) => s.name)).not.toContain("projects/test-project/secrets/agent-work-job-jsecret4");
    await backend.close();
  });
});

describe("secrets the controller reads (AGENT_ENV_FROM_SECRET_MANAGER)", () => {
  it("reads the latest version of each, and says what to do when one is missing", async () => {
    await secrets.put("model", "sk-ant-first", { ttlSeconds: 600 });
    await secrets.put("model", "sk-ant-second", { ttlSeconds: 600 });
    const values = await readSecrets(
      { ANTHROPIC_API_KEY: "projects/test-project/secrets/agent-work-job-model" },
      { clientOptions: fake.clientOptions(), clock: virtualClock() },
    );
    expect(values).toEqual({ ANTHROPIC_API_KEY: "sk-ant-second" });
    await expect(
      readSecrets({ OPENAI_API_KEY: "projects/test-project/secrets/missing" }, { clientOptions: fake.clientOptions(), clock: virtualClock() }),
    ).rejects.toThrow(
      /cannot read OPENAI_API_KEY from Secret Manager \(projects\/test-project\/secrets\/missing\/versions\/latest\): NOT_FOUND .*create the secret and add a version/,
    );
  });
});
