/**
 * The reaper against the real local backend: real worker processes, a real git server, real
 * SQLite. What it removes really stops running; what a live job owns keeps running.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { local } from "../../src/backends/local/local-backend.js";
import type { Backend, RunResult, RunSpec, Worker } from "../../src/backends/types.js";
import type { JobState } from "../../src/jobs/state.js";
import type { Job } from "../../src/jobs/types.js";
import { Reaper } from "../../src/reaper/reaper.js";
import { JobStore } from "../../src/store/job-store.js";
import { openStore } from "../../src/store/open-store.js";
import { eventually, processesUnder } from "../contract/live-processes.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));
const silent = { info: () => {}, warn: () => {}, error: () => {} };

describe("the reaper with the local backend", () => {
  let rootDir: string;
  let backend: Backend;
  let git: GitServer;
  let store: JobStore;
  let reaper: Reaper;
  let clock = Date.now();
  let issue = 0;
  const token = `ghs_${randomBytes(18).toString("hex")}`;

  beforeAll(async () => {
    rootDir = await mkdtemp(path.join(os.tmpdir(), "agent-work-reaper-"));
    backend = local.create({ rootDir, maxConcurrent: 8, killGraceMs: 1000 });
    git = await startGitServer({ acceptToken: token });
    store = new JobStore(await openStore({ dataDir: ":memory:" }));
    reaper = new Reaper({ store, backends: new Map([["local", backend]]), now: () => clock, log: silent as never, deadlineGraceMs: 60_000 });
  });
  afterAll(async () => {
    await git?.close();
    await rm(rootDir, { recursive: true, force: true });
  });

  async function jobIn(state: JobState, deadlineAt = Date.now() + 3_600_000): Promise<{ job: Job; worker: Worker }> {
    issue += 1;
    let job = (
      await store.insertReceived(
        {
          deliveryId: `d-${randomBytes(4).toString("hex")}`,
          installationId: 1,
          repoId: 1,
          owner: "octo",
          repo: "demo",
          number: issue,
          kind: "issue",
          trigger: "label",
          requester: "alice",
          title: "t",
          body: "b",
          cloneUrl: "x",
          defaultBranch: "main",
          instructions: null,
        },
        { backend: "local" },
      )
    ).job;
    const steps: JobState[] = state === "running" ? ["queued", "provisioning", "running"] : ["queued", "provisioning", "running", "reporting", "succeeded"];
    let worker: Worker | undefined;
    for (const to of steps) {
      job = await store.transition(job.id, job.state, to, to === "provisioning" ? { deadlineAt } : {});
      if (to === "provisioning") {
        worker = await backend.create({ jobId: job.id, repoFullName: "octo/demo", maxSeconds: 600 }, new AbortController().signal);
        job = await store.update(job.id, { worker });
      }
    }
    return { job, worker: worker! };
  }

  /** Starts a run whose agent sleeps (outside bubblewrap, so it sits in a session of its own); resolves once it sleeps. */
  async function sleepingRun(worker: Worker): Promise<{ done: Promise<RunResult>; abort(): void }> {
    const { cloneUrl } = await git.createRepo("octo", worker.jobId, { "README.md": "# demo\n" });
    const spec: RunSpec = {
      jobId: worker.jobId,
      cloneUrl,
      baseBranch: "main",
      branch: `agent-work/${worker.jobId}`,
      token,
      agentArgv: [process.execPath, FAKE_AGENT, "{prompt_file}"],
      prompt: "FAKE_AGENT:sleep",
      commitMessage: "agent-work",
      author: { name: "agent-work[bot]", email: "bot@example.com" },
      agentTimeoutSeconds: 120,
      agentEnv: {},
      sandbox: { kind: "none" },
    };
    const ac = new AbortController();
    let sleeping!: () => void;
    const asleep = new Promise<void>((r) => (sleeping = r));
    const done = backend.run(worker, spec, (e) => e.type === "log" && e.line === "fake agent: sleeping" && sleeping(), ac.signal);
    await asleep;
    return { done, abort: () => ac.abort() };
  }

  const alive = async (w: Worker) => (await processesUnder(path.join(rootDir, w.jobId))).length;

  it("destroys an orphan's processes and folder on the second pass, and never touches a running job's worker", async () => {
    const busy = await jobIn("running");
    const finished = await jobIn("succeeded"); // its teardown never happened
    const [busyRun, orphanRun] = await Promise.all([sleepingRun(busy.worker), sleepingRun(finished.worker)]);

    const first = await reaper.tick();
    expect(first.actions.map((a) => `${a.kind} ${a.jobId}`)).toEqual([`mark-orphan ${finished.job.id}`]);
    expect(await alive(finished.worker)).toBeGreaterThan(0);

    clock += 60_000;
    const second = await reaper.tick();
    expect(second.actions.map((a) => `${a.kind} ${a.jobId}`)).toEqual([`destroy-orphan ${finished.job.id}`]);
    expect((await orphanRun.done).outcome).toBe("error");
    expect(await eventually(async () => (await alive(finished.worker)) === 0)).toBe(true);
    expect(existsSync(path.join(rootDir, finished.job.id))).toBe(false);

    // The busy worker went through both passes untouched.
    expect(await alive(busy.worker)).toBeGreaterThan(0);
    busyRun.abort();
    await busyRun.done;
    await store.transition(busy.job.id, "running", "cancelled");
    await backend.destroy(busy.worker);
  });

  it("times out a running job long past its deadline and stops its worker", async () => {
    const late = await jobIn("running", clock - 120_000);
    const run = await sleepingRun(late.worker);
    const report = await reaper.tick();
    expect(report.actions.map((a) => a.kind)).toEqual(["time-out"]);
    expect((await store.get(late.job.id))?.state).toBe("timed_out");
    await run.done;
    expect(await eventually(async () => (await alive(late.worker)) === 0)).toBe(true);
    expect(existsSync(path.join(rootDir, late.job.id))).toBe(false);
  });

  it("fails a running job whose worker folder vanished", async () => {
    const gone = await jobIn("running");
    await rm(path.join(rootDir, gone.job.id), { recursive: true, force: true });
    await reaper.tick();
    clock += 60_000;
    await reaper.tick();
    expect(await store.get(gone.job.id)).toMatchObject({ state: "failed", message: expect.stringMatching(/disappeared while the job was running/) });
  });
});
