/**
 * The backend contract for `cloudrun`: the Cloud Run Admin API and Cloud Logging are a fake on
 * 127.0.0.1 whose executions run the real worker script locally (test/support/fake-cloudrun.ts),
 * and Secret Manager is fake-gcp's, reached through the real client: the input secret a job's
 * volume mounts is the one the backend put there.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { realClock } from "../../src/backends/gce/backoff.js";
import { jobSecretId } from "../../src/backends/gce/gce-names.js";
import { createJobSecrets } from "../../src/backends/gce/job-secrets.js";
import { cloudRunJobId } from "../../src/backends/cloudrun/build-run-job.js";
import { cloudrun, type CloudRunBackendOptions } from "../../src/backends/cloudrun/cloudrun-backend.js";
import { createRunApi } from "../../src/backends/cloudrun/run-api.js";
import { loadBackendModule } from "../../src/backends/registry.js";
import type { Backend, JobSpec, RunSpec } from "../../src/backends/types.js";
import type { ProgressEvent } from "../../src/worker/protocol.js";
import { workerDir } from "../../src/worker/worker-script-path.js";
import { startFakeCloudRun, type FakeCloudRun } from "../support/fake-cloudrun.js";
import { startFakeGcp, type FakeGcp } from "../support/fake-gcp.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { backendContract } from "./backend.js";
import { processesUnder } from "./live-processes.js";
import { fakeAgentSpec } from "../support/run-spec.js";

const PROJECT = "test-project";
const WORKER_SA = "agent-work-worker@test-project.iam.gserviceaccount.com";
const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));

interface World {
  gcp: FakeGcp;
  run: FakeCloudRun;
  options(over?: Partial<CloudRunBackendOptions>): CloudRunBackendOptions;
  close(): Promise<void>;
}

async function startWorld(logLagMs = 0): Promise<World> {
  const gcp = await startFakeGcp({ projects: [PROJECT] });
  const latest = (secretId: string) => {
    const s = gcp.secrets().find((x) => x.name === `projects/${PROJECT}/secrets/${secretId}`);
    const v = s?.versions.filter((x) => x.state === "ENABLED").at(-1);
    return v ? Buffer.from(v.data, "base64").toString("utf8") : undefined;
  };
  const run = await startFakeCloudRun({ imageFiles: { "/app/worker": workerDir }, readSecret: latest, graceMs: 2000, logLagMs });
  return {
    gcp,
    run,
    options: (over = {}) => ({
      api: createRunApi({ project: PROJECT, region: "us-central1", runUrl: run.url, loggingUrl: run.url, accessToken: async () => undefined }),
      secrets: createJobSecrets({ project: PROJECT, serviceAccount: WORKER_SA, envLabel: "contract", clientOptions: gcp.clientOptions(), clock: realClock }),
      image: "us-docker.pkg.dev/test-project/agent-work/worker:test",
      serviceAccount: WORKER_SA,
      envLabel: "contract",
      defaults: { cpu: "1", memory: "2Gi" },
      maxJobs: 8,
      pollIntervalMs: 50,
      logSettleMs: 2000,
      logHoldMs: logLagMs === 0 ? 0 : logLagMs + 200,
      ...over,
    }),
    close: async () => {
      await run.close();
      await gcp.close();
    },
  };
}

backendContract("cloudrun", async () => {
  const world = await startWorld();
  return {
    backend: cloudrun.create(world.options()),
    cleanup: () => world.close(),
    liveProcesses: async (w) => (await processesUnder(world.run.jobDir(cloudRunJobId(w.jobId)))).map((p) => `${p.pid} ${p.cmdline}`),
    sandbox: { kind: "none" },
  };
});

describe("the cloudrun backend, beyond the contract", () => {
  let world: World;
  let git: GitServer;
  let backend: Backend;
  const token = `ghs_${randomBytes(18).toString("hex")}`;
  const never = new AbortController().signal;
  let n = 0;
  const newJob = (over: Partial<JobSpec> = {}): JobSpec => ({
    jobId: `c${++n}-${randomBytes(3).toString("hex")}`,
    repoFullName: "octo/demo",
    maxSeconds: 600,
    ...over,
  });

  beforeAll(async () => {
    world = await startWorld();
    git = await startGitServer({ acceptToken: token });
    backend = cloudrun.create(world.options());
  });
  afterAll(async () => {
    await Promise.all([world?.close(), git?.close()]);
  });

  async function spec(jobId: string, prompt: string): Promise<RunSpec> {
    return fakeAgentSpec(
      git,
      jobId,
      token,
      { prompt, author: { name: "agent-work[bot]", email: "agent-work@users.noreply.example.com" }, sandbox: { kind: "none" } },
      `r-${jobId}`,
    );
  }

  it("is the module the registry loads by the name cloudrun", async () => {
    expect(await loadBackendModule("cloudrun")).toBe(cloudrun);
  });

  it("hands the worker its input and token in a mounted secret only the workers' identity may read, never in the job's environment or command", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    expect((await backend.run(w, await spec(job.jobId, "FAKE_AGENT:none"), () => {}, never)).outcome).toBe("no_changes");
    const made = world.run.jobs().find((j) => j.name.endsWith(`/jobs/${cloudRunJobId(job.jobId)}`))!;
    expect(JSON.stringify(made)).not.toContain(token);
    expect(made.template.template.volumes).toEqual([
      { name: "input", secret: { secret: jobSecretId(job.jobId), items: [{ version: "latest", path: "input.json", mode: 0o400 }] } },
    ]);
    expect(world.run.requests.some((r) => JSON.stringify(r.body ?? "").includes(token))).toBe(false);
    const secret = world.gcp.secrets().find((s) => s.name.endsWith(`/secrets/${jobSecretId(job.jobId)}`))!;
    expect(secret.policy.bindings).toEqual([{ role: "roles/secretmanager.secretAccessor", members: [`serviceAccount:${WORKER_SA}`] }]);
    expect(secret.body.ttl).toBeDefined();
    await backend.destroy(w);
    expect(world.gcp.secrets().map((s) => s.name)).not.toContain(secret.name);
  });

  it("follows the worker's log while it runs: steps arrive before the execution ends", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    const events: ProgressEvent[] = [];
    let runningWhenCloned: boolean | undefined;
    const result = await backend.run(
      w,
      await spec(job.jobId, "FAKE_AGENT:edit"),
      (e) => {
        events.push(e);
        if (e.type === "step" && e.step === "clone" && e.status === "finished") {
          const exec = world.run.executions().find((x) => String(x.name).includes(`/jobs/${cloudRunJobId(job.jobId)}/`));
          runningWhenCloned = exec !== undefined && exec.runningCount === 1 && !exec.completionTime;
        }
      },
      never,
    );
    expect(result.outcome).toBe("pushed");
    expect(runningWhenCloned).toBe(true);
    await backend.destroy(w);
  });

  it("reads a log Cloud Logging shows late and out of order in the order the worker wrote it, result included", async () => {
    const laggy = await startWorld(400);
    try {
      const other = cloudrun.create(laggy.options());
      const job = newJob();
      const w = await other.create(job, never);
      const events: ProgressEvent[] = [];
      const result = await other.run(w, await spec(job.jobId, "FAKE_AGENT:edit"), (e) => events.push(e), never);
      expect(result).toMatchObject({ outcome: "pushed", aborted: false });
      expect(events.flatMap((e) => (e.type === "step" ? [`${e.step}:${e.status}`] : []))).toEqual([
        "clone:started",
        "clone:finished",
        "agent:started",
        "agent:finished",
        "commit:started",
        "commit:finished",
        "push:started",
        "push:finished",
      ]);
      expect(events.filter((e) => e.type === "result")).toHaveLength(1);
      await other.destroy(w);
    } finally {
      await laggy.close();
    }
  });

  it("a second run of the same worker is refused: a worker runs once", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    const once = await spec(job.jobId, "FAKE_AGENT:none");
    await backend.run(w, once, () => {}, never);
    expect(await backend.run(w, once, () => {}, never)).toMatchObject({ outcome: "error", message: expect.stringMatching(/already been started/) });
    await backend.destroy(w);
  });

  it("retries 429 and 503 answers from Cloud Run", async () => {
    const jobsPath = /\/jobs$/;
    world.run.failNext({ method: "POST", path: jobsPath }, 503);
    world.run.failNext({ method: "POST", path: jobsPath }, 429);
    const at = world.run.requests.length;
    const w = await backend.create(newJob(), never);
    expect(
      world.run.requests
        .slice(at)
        .filter((r) => r.method === "POST")
        .map((r) => r.status),
    ).toEqual([503, 429, 200]);
    await backend.destroy(w);
  });

  it("stops at once on 403, with Google's answer in the error", async () => {
    world.run.failNext({ method: "POST", path: /\/jobs$/ }, 403);
    const at = world.run.requests.length;
    await expect(backend.create(newJob(), never)).rejects.toThrow(/403 PERMISSION_DENIED injected/);
    expect(world.run.requests.slice(at).filter((r) => r.method === "POST")).toHaveLength(1);
  });

  it("waits for a new job to finish reconciling before running it", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    expect(world.run.jobs().find((j) => j.name.endsWith(`/jobs/${cloudRunJobId(job.jobId)}`))?.reconciling).toBe(false);
    expect((await backend.run(w, await spec(job.jobId, "FAKE_AGENT:none"), () => {}, never)).outcome).toBe("no_changes");
    expect(world.run.requests.filter((r) => r.path.endsWith(`${cloudRunJobId(job.jobId)}:run`)).map((r) => r.status)).toEqual([200]);
    await backend.destroy(w);
  });

  it("refuses a job id that cannot name a Cloud Run job, and a size a task cannot have, before calling the API", async () => {
    const at = world.run.requests.length;
    await expect(backend.create(newJob({ jobId: "Bad_Id" }), never)).rejects.toThrow(/cannot name a Cloud Run job/);
    await expect(backend.create(newJob({ machineType: "n2-standard-16" }), never)).rejects.toThrow(/more than a Cloud Run task can have/);
    expect(world.run.requests.length).toBe(at);
  });
});
