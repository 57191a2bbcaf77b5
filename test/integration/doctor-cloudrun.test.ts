/**
 * `agent-work doctor`'s cloudrun section against the fake Cloud Run (test/support/fake-cloudrun.ts),
 * which also answers the Resource Manager, IAM and Artifact Registry reads the doctor makes: a
 * complete setup passes, and each missing piece is named with the command that fixes it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLOUDRUN_BACKEND_PERMISSIONS, checkCloudRun, type CloudRunDoctorDeps } from "../../src/cli/doctor/check-cloudrun.js";
import type { DoctorCheck, DoctorReport } from "../../src/cli/doctor/doctor-check.js";
import { formatDoctorReport, runDoctor } from "../../src/cli/doctor/run-doctor.js";
import { loadControllerConfig } from "../../src/config/env.js";
import { bundledCloudRunPrices } from "../../src/cost/cloudrun-price.js";
import { startFakeCloudRun, type FakeCloudRun } from "../support/fake-cloudrun.js";

const PROJECT = "test-project";
const CONTROLLER = "agent-work-controller@test-project.iam.gserviceaccount.com";
const WORKER_SA = "agent-work-worker@test-project.iam.gserviceaccount.com";
const DIGEST = `sha256:${"ab".repeat(32)}`;
const IMAGE = `us-docker.pkg.dev/${PROJECT}/agent-work/worker`;
const ALL = CLOUDRUN_BACKEND_PERMISSIONS.map((p) => p.permission);

const env = (over: Record<string, string> = {}) => ({
  CLOUDRUN_PROJECT: PROJECT,
  CLOUDRUN_REGION: "us-central1",
  CLOUDRUN_IMAGE: `${IMAGE}@${DIGEST}`,
  CLOUDRUN_SERVICE_ACCOUNT: WORKER_SA,
  ...over,
});

/** A fake Google with the project, the worker image and the permissions given (default all). */
async function startGoogle(over: { granted?: string[]; actAs?: boolean } = {}): Promise<FakeCloudRun> {
  return startFakeCloudRun({
    readSecret: () => undefined,
    projects: [PROJECT],
    regions: ["us-central1", "europe-west1", "africa-south1"],
    granted: over.granted ?? ALL,
    serviceAccounts: { [WORKER_SA]: over.actAs === false ? [] : ["iam.serviceAccounts.actAs"] },
    images: [{ ref: `${IMAGE}@${DIGEST}`, tags: ["1.0"] }],
  });
}

const depsFor = (fake: FakeCloudRun, over: CloudRunDoctorDeps = {}): CloudRunDoctorDeps => ({
  credentials: async () => ({ principal: CONTROLLER }),
  accessToken: async () => undefined,
  urls: { run: fake.url, resourceManager: fake.url, iam: fake.url, artifactRegistry: fake.url },
  ...over,
});

/** The cloudrun section alone, for a configuration from `vars`. */
async function cloudRunDoctor(vars: Record<string, string>, deps: CloudRunDoctorDeps): Promise<DoctorReport> {
  const loaded = loadControllerConfig(vars);
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  const checks: DoctorCheck[] = [];
  await checkCloudRun(loaded.config.cloudrun!, deps, (c) => checks.push(c));
  return { ok: checks.every((c) => c.status !== "fail"), checks };
}

const byName = (report: DoctorReport, name: string) => report.checks.find((c) => c.name === name);
const failures = (report: DoctorReport) => report.checks.filter((c) => c.status === "fail");

describe("agent-work doctor, cloudrun", () => {
  let fake: FakeCloudRun;
  beforeAll(async () => {
    fake = await startGoogle();
  });
  afterAll(async () => {
    await fake?.close();
  });

  it("passes a complete setup, checking size, price, credentials, project and region, permissions, the workers' account and the image", async () => {
    const report = await cloudRunDoctor(env(), depsFor(fake));
    expect(failures(report)).toEqual([]);
    expect(report.checks.map((c) => [c.name, c.status])).toEqual([
      ["cloudrun configuration", "ok"],
      ["price Cloud Run in us-central1", "ok"],
      ["cloudrun credentials", "ok"],
      [`cloudrun ${PROJECT}/us-central1`, "ok"],
      [`cloudrun permissions in ${PROJECT}`, "ok"],
      ["cloudrun worker service account", "ok"],
      ["cloudrun image", "ok"],
    ]);
    // 1 vCPU, 2 GiB at $0.000018 and $0.000002 a second: $0.0792 an hour.
    expect(byName(report, "price Cloud Run in us-central1")!.detail).toMatch(/^\$0\.0792 an hour for a 1 vCPU, 2Gi task/);
  });

  it("only reads: it lists one job, asks testIamPermissions and looks the image up, and creates nothing", async () => {
    const before = fake.requests.length;
    await cloudRunDoctor(env(), depsFor(fake));
    const made = fake.requests.slice(before).map((r) => `${r.method} ${r.path}`);
    expect(made).toEqual([
      `GET /v2/projects/${PROJECT}/locations/us-central1/jobs`,
      `POST /v1/projects/${PROJECT}:testIamPermissions`,
      `POST /v1/projects/-/serviceAccounts/${WORKER_SA}:testIamPermissions`,
      `GET /v1/projects/${PROJECT}/locations/us/repositories/agent-work/packages/worker/versions/${DIGEST}`,
    ]);
    expect(fake.jobs()).toEqual([]);
  });

  it("finds an image by its tag as well as by its digest", async () => {
    const report = await cloudRunDoctor(env({ CLOUDRUN_IMAGE: `${IMAGE}:1.0` }), depsFor(fake));
    expect(byName(report, "cloudrun image")).toMatchObject({ status: "ok", detail: `${IMAGE}:1.0 exists (${DIGEST})` });
  });

  it("fails a worker image that is not in the registry, with how to push it", async () => {
    const report = await cloudRunDoctor(env({ CLOUDRUN_IMAGE: `${IMAGE}:2.0` }), depsFor(fake));
    expect(byName(report, "cloudrun image")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/no such tag/),
      fix: expect.stringMatching(/docker buildx build -f k8s\/worker\.Dockerfile -t us-docker\.pkg\.dev\/test-project\/agent-work\/worker:2\.0 --push/),
    });
  });

  it("fails a project that does not exist or is hidden from the controller, and checks nothing that needs it", async () => {
    const report = await cloudRunDoctor(env({ CLOUDRUN_PROJECT: "other-project" }), depsFor(fake));
    expect(byName(report, "cloudrun other-project/us-central1")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/^403 PERMISSION_DENIED .*\(or it may not exist\)/),
      fix: expect.stringMatching(/check CLOUDRUN_PROJECT \(other-project: does it exist\?\).*roles\/run\.developer/),
    });
    expect(report.checks.at(-1)).toMatchObject({ status: "skip", detail: expect.stringMatching(/^the permissions and image not checked/) });
    expect(report.checks.map((c) => c.name)).not.toContain("cloudrun image");
  });

  it("fails a region Cloud Run does not serve, with the command that lists them", async () => {
    const report = await cloudRunDoctor(env({ CLOUDRUN_REGION: "us-nowhere1" }), depsFor(fake));
    expect(byName(report, `cloudrun ${PROJECT}/us-nowhere1`)).toMatchObject({
      status: "fail",
      fix: expect.stringMatching(/gcloud run regions list --project test-project/),
    });
  });

  it("says to enable the API when Google answers that it is off in the project", async () => {
    // Google's answer for an API that is off, as it sends it: a 403 whose message and reason say so.
    const disabled: typeof fetch = async () =>
      new Response(
        JSON.stringify({
          error: {
            code: 403,
            status: "PERMISSION_DENIED",
            message: "Cloud Run Admin API has not been used in project 123 before or it is disabled.",
            details: [{ reason: "SERVICE_DISABLED" }],
          },
        }),
        { status: 403 },
      );
    const report = await cloudRunDoctor(env(), depsFor(fake, { fetch: disabled }));
    expect(byName(report, `cloudrun ${PROJECT}/us-central1`)).toMatchObject({
      status: "fail",
      fix: `gcloud services enable run.googleapis.com secretmanager.googleapis.com logging.googleapis.com --project ${PROJECT}`,
    });
  });

  it("fails when the Cloud Run API cannot be reached, saying where it was going", async () => {
    const closed = await startGoogle();
    const url = closed.url;
    await closed.close();
    const report = await cloudRunDoctor(env(), depsFor(fake, { urls: { run: url } }));
    expect(byName(report, `cloudrun ${PROJECT}/us-central1`)).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/^could not reach 127\.0\.0\.1:\d+: fetch failed \(ECONNREFUSED\)/),
      fix: expect.stringMatching(/check the network path/),
    });
  });

  it("stops at missing credentials with the command that provides them", async () => {
    const report = await cloudRunDoctor(env(), depsFor(fake, { credentials: async () => Promise.reject(new Error("Could not load the default credentials")) }));
    expect(byName(report, "cloudrun credentials")).toMatchObject({ status: "fail", fix: expect.stringMatching(/gcloud auth application-default login/) });
    expect(report.checks.at(-1)).toMatchObject({ status: "skip", detail: "the project, permissions and image not checked without credentials" });
  });

  it("fails an unpriced region, since the backend bills every task from the table", async () => {
    const report = await cloudRunDoctor(env({ CLOUDRUN_REGION: "africa-south1" }), depsFor(fake));
    expect(byName(report, "price Cloud Run in africa-south1")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/no price for africa-south1/),
      fix: expect.stringMatching(/src\/cost\/cloudrun-prices\.json/),
    });
    // Everything that does not depend on the price is still checked.
    expect(byName(report, `cloudrun permissions in ${PROJECT}`)?.status).toBe("ok");
  });

  it("fails a priced region whose tier has no prices", async () => {
    const prices = { ...bundledCloudRunPrices, regions: { ...bundledCloudRunPrices.regions, "europe-west1": "tier2" } };
    const report = await cloudRunDoctor(env({ CLOUDRUN_REGION: "europe-west1" }), depsFor(fake, { prices }));
    expect(byName(report, "price Cloud Run in europe-west1")?.status).toBe("fail");
  });

  it("fails a default task size Cloud Run cannot give, and says which sizes it can", async () => {
    const report = await cloudRunDoctor(env({ CLOUDRUN_CPU: "8", CLOUDRUN_MEMORY: "64Gi" }), depsFor(fake));
    expect(byName(report, "cloudrun configuration")).toMatchObject({ status: "fail", fix: expect.stringMatching(/at most 4Gi per CPU/) });
  });
});

describe("agent-work doctor, cloudrun permissions", () => {
  let fake: FakeCloudRun;
  afterAll(async () => {
    await fake?.close();
  });

  it("asks for exactly the roles README.md's set-up tells the operator to grant", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const setup = readme.slice(readme.indexOf("## Run on Cloud Run"), readme.indexOf("\n## ", readme.indexOf("## Run on Cloud Run") + 1));
    for (const role of new Set(CLOUDRUN_BACKEND_PERMISSIONS.map((p) => p.role))) expect(setup).toContain(`\`${role}\``);
  });

  it("names each missing permission with the role and command that grant it", async () => {
    fake = await startGoogle({ granted: ALL.filter((p) => p !== "run.jobs.runWithOverrides" && p !== "logging.logEntries.list") });
    const report = await cloudRunDoctor(env(), depsFor(fake));
    expect(byName(report, `cloudrun permissions in ${PROJECT}`)).toEqual({
      name: `cloudrun permissions in ${PROJECT}`,
      status: "fail",
      detail: "the controller may not run.jobs.runWithOverrides, logging.logEntries.list",
      fix:
        `gcloud projects add-iam-policy-binding ${PROJECT} --member serviceAccount:${CONTROLLER} --role roles/run.developer; ` +
        `gcloud projects add-iam-policy-binding ${PROJECT} --member serviceAccount:${CONTROLLER} --role roles/logging.viewer`,
    });
    await fake.close();
  });

  it("names every permission when the controller holds none (Google answers {} then)", async () => {
    fake = await startGoogle({ granted: [] });
    const report = await cloudRunDoctor(env(), depsFor(fake));
    const check = byName(report, `cloudrun permissions in ${PROJECT}`)!;
    expect(check.status).toBe("fail");
    for (const permission of ALL) expect(check.detail).toContain(permission);
    expect(check.fix).toMatch(/roles\/secretmanager\.admin/);
    await fake.close();
  });

  it("fails when the controller may not run jobs as the workers' account, or that account does not exist", async () => {
    fake = await startGoogle({ actAs: false });
    let report = await cloudRunDoctor(env(), depsFor(fake));
    expect(byName(report, "cloudrun worker service account")).toMatchObject({
      status: "fail",
      fix: `gcloud iam service-accounts add-iam-policy-binding ${WORKER_SA} --member serviceAccount:${CONTROLLER} --role roles/iam.serviceAccountUser`,
    });
    report = await cloudRunDoctor(env({ CLOUDRUN_SERVICE_ACCOUNT: "nobody@test-project.iam.gserviceaccount.com" }), depsFor(fake));
    expect(byName(report, "cloudrun worker service account")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/404 NOT_FOUND/),
      fix: expect.stringMatching(/^create it \(it needs no role\): gcloud iam service-accounts create nobody --project test-project/),
    });
    await fake.close();
  });
});

describe("agent-work doctor with CLOUDRUN_PROJECT", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-doctor-cloudrun-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs the cloudrun section after the others, and reports its problems in the summary", async () => {
    const fake = await startGoogle({ granted: ALL.filter((p) => p !== "run.executions.cancel") });
    try {
      const sections: string[] = [];
      // The sections before cloudrun's run too; their results are not this test's.
      const report = await runDoctor(
        { ...env(), DATA_DIR: path.join(dir, "data"), HOME: dir },
        { cloudrun: depsFor(fake), onSection: (s) => sections.push(s), sandbox: () => {}, agentPath: dir },
      );
      expect(sections.at(-1)).toBe("checking the cloudrun backend");
      expect(byName(report, `cloudrun permissions in ${PROJECT}`)).toMatchObject({ status: "fail", detail: "the controller may not run.executions.cancel" });
      expect(formatDoctorReport(report)).toContain(`FAIL  cloudrun permissions in ${PROJECT}: the controller may not run.executions.cancel`);
    } finally {
      await fake.close();
    }
  });
});
