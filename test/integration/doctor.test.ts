/**
 * `agent-work doctor`'s gce section against the fake Google Cloud: each missing piece is named
 * with its fix, and a complete setup passes. (The whole doctor, as a process: doctor-all.test.ts.)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkGce, type GceDoctorDeps } from "../../src/cli/doctor/check-gce.js";
import type { DoctorCheck, DoctorReport } from "../../src/cli/doctor/doctor-check.js";
import { formatDoctorReport, runDoctor } from "../../src/cli/doctor/run-doctor.js";
import { loadControllerConfig } from "../../src/config/env.js";
import { createJobSecrets } from "../../src/backends/gce/job-secrets.js";
import { startFakeGcp, type FakeGcp } from "../support/fake-gcp.js";
import { virtualClock } from "../support/virtual-clock.js";

const dir = mkdtempSync(join(tmpdir(), "agent-work-doctor-"));
const keyPath = join(dir, "worker_ed25519");
writeFileSync(keyPath, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n");
let fake: FakeGcp;
let deps: GceDoctorDeps;

/** The gce section alone, for a configuration from `vars`. */
async function gceDoctor(vars: Record<string, string>, gceDeps: GceDoctorDeps): Promise<DoctorReport> {
  const loaded = loadControllerConfig(vars);
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  const checks: DoctorCheck[] = [];
  await checkGce({ ...loaded.config, gce: loaded.config.gce! }, gceDeps, (c) => checks.push(c));
  return { ok: checks.every((c) => c.status !== "fail"), checks };
}

const env = (over: Record<string, string> = {}) => ({
  GCE_PROJECT: "test-project",
  GCE_ZONES: "us-central1-a,europe-west1-b",
  GCE_SSH_PRIVATE_KEY_PATH: keyPath,
  ...over,
});
const byName = (report: DoctorReport, name: string) => report.checks.filter((c) => c.name === name);
const failures = (report: DoctorReport) => report.checks.filter((c) => c.status === "fail");

beforeAll(async () => {
  fake = await startFakeGcp({ images: ["projects/test-project/global/images/family/agent-work-worker"], machineTypes: ["e2-standard-2"] });
  deps = { clientOptions: fake.clientOptions(), credentials: async () => ({ principal: "agent-work-controller@test-project.iam.gserviceaccount.com" }) };
});
afterAll(async () => {
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("agent-work doctor", () => {
  it("passes a complete setup, checking credentials, project, each zone, image and prices", async () => {
    const report = await gceDoctor(env(), deps);
    expect(failures(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual([
      "gce configuration",
      "credentials",
      "project test-project",
      "zone us-central1-a",
      "zone europe-west1-b",
      "image",
      // The fake's image carries no agent-cli-* labels: doctor says it cannot see (doctor-agent-clis.test.ts).
      "gce image agent-work-worker: agent CLIs",
      "price e2-standard-2 spot in us-central1",
      "price e2-standard-2 on-demand in us-central1",
      "price e2-standard-2 spot in europe-west1",
      "price e2-standard-2 on-demand in europe-west1",
      "worker service account",
    ]);
    expect(formatDoctorReport(report)).toMatch(/everything checked is in place\.$/);
  });

  it("names every bad variable, and checks nothing else", async () => {
    const report = await runDoctor(env({ GCE_ZONES: "nowhere", GCE_SSH_PRIVATE_KEY_PATH: join(dir, "missing") }), { gce: deps });
    expect(failures(report).map((c) => c.detail)).toEqual([
      expect.stringMatching(/^GCE_ZONES="nowhere"/),
      expect.stringMatching(/^GCE_SSH_PRIVATE_KEY_PATH=.*cannot read/),
    ]);
  });

  it("stops at missing credentials with the command that provides them", async () => {
    const report = await gceDoctor(env(), { ...deps, credentials: async () => Promise.reject(new Error("Could not load the default credentials")) });
    expect(report.checks.at(-1)).toMatchObject({
      name: "credentials",
      status: "fail",
      detail: expect.stringMatching(/Could not load the default credentials/),
      fix: expect.stringMatching(/gcloud auth application-default login/),
    });
  });

  it("says how to enable the API when the project cannot be found", async () => {
    const report = await gceDoctor(env({ GCE_PROJECT: "other-project" }), deps);
    expect(byName(report, "project other-project")[0]).toMatchObject({
      status: "fail",
      fix: expect.stringMatching(/gcloud services enable compute\.googleapis\.com/),
    });
  });

  it("names a zone that does not exist, a zone without the machine type, and a missing image", async () => {
    const report = await gceDoctor(
      env({ GCE_ZONES: "us-central1-a,us-east9-z", GCE_MACHINE_TYPE: "e2-small", GCE_IMAGE: "projects/test-project/global/images/family/not-baked" }),
      deps,
    );
    expect(byName(report, "zone us-east9-z")[0]).toMatchObject({ status: "fail", fix: expect.stringMatching(/is not a zone/) });
    expect(byName(report, "zone us-central1-a")[0]).toMatchObject({ status: "fail", fix: expect.stringMatching(/does not offer e2-small/) });
    expect(byName(report, "image")[0]).toMatchObject({ status: "fail", fix: expect.stringMatching(/ansible\/bake-image\.sh test-project us-central1-a/) });
    expect(byName(report, "price e2-small spot in us-east9")[0]).toMatchObject({ status: "fail", fix: expect.stringMatching(/npm run prices/) });
    expect(formatDoctorReport(report)).toMatch(/\d+ problems to fix\.$/);
  });

  it("checks that the controller can read each secret it is told to, without printing it", async () => {
    const secrets = createJobSecrets({
      project: "test-project",
      serviceAccount: "w@test-project.iam.gserviceaccount.com",
      envLabel: "x",
      clientOptions: fake.clientOptions(),
      clock: virtualClock(),
    });
    await secrets.put("present", "sk-ant-canary-value-0123456789", { ttlSeconds: 600 });
    const report = await gceDoctor(
      env({
        AGENT_ENV_FROM_SECRET_MANAGER:
          "ANTHROPIC_API_KEY=projects/test-project/secrets/model-key,OPENAI_API_KEY=projects/test-project/secrets/agent-work-job-present",
      }),
      deps,
    );
    expect(byName(report, "secret ANTHROPIC_API_KEY")[0]).toMatchObject({ status: "fail", fix: expect.stringMatching(/gcloud secrets create model-key/) });
    expect(byName(report, "secret OPENAI_API_KEY")[0]).toMatchObject({
      status: "ok",
      detail: "projects/test-project/secrets/agent-work-job-present/versions/latest exists and the controller may read it",
    });
    expect(JSON.stringify(report)).not.toContain("sk-ant-canary");
  });
});
