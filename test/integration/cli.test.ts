/**
 * The ops CLI run as a real process (compiled: test/support/compiled-args.ts) against a temp DATA_DIR that a test controller's store
 * and local backend share, the way an operator runs it beside a live controller.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { local } from "../../src/backends/local/local-backend.js";
import type { Backend, RunResult, Worker } from "../../src/backends/types.js";
import type { JobState } from "../../src/jobs/state.js";
import type { Job } from "../../src/jobs/types.js";
import { JobStore } from "../../src/store/job-store.js";
import { openStore } from "../../src/store/open-store.js";
import { ReaperMarkStore } from "../../src/store/reaper-marks.js";
import { eventually, processesUnder } from "../contract/live-processes.js";
import { compiledArgs } from "../support/compiled-args.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = path.join(ROOT, "src", "cli", "main.ts");
const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));

// Each command is a process of its own (~1 s of CPU to start): on a loaded machine that is a long wait.
describe("the agent-work CLI", { timeout: 180_000 }, () => {
  let dataDir: string;
  let store: JobStore;
  let backend: Backend;
  let git: GitServer;
  let issue = 0;
  const token = `ghs_${randomBytes(18).toString("hex")}`;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "agent-work-cli-"));
    store = new JobStore(await openStore({ dataDir }));
    // The same folder the controller's local backend uses: DATA_DIR/workers.
    backend = local.create({ rootDir: path.join(dataDir, "workers"), maxConcurrent: 4, killGraceMs: 1000 });
    git = await startGitServer({ acceptToken: token });
  });
  afterAll(async () => {
    await store?.db.destroy();
    await git?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  function cli(...args: string[]) {
    // cwd is the data folder, so a developer's .env in the repository cannot leak into the test.
    return execa(process.execPath, [...compiledArgs(CLI), ...args], {
      cwd: dataDir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir },
      extendEnv: false,
      reject: false,
    });
  }

  async function jobIn(state: JobState, repo = "demo"): Promise<Job> {
    issue += 1;
    let job = (
      await store.insertReceived(
        {
          deliveryId: `d-${randomBytes(4).toString("hex")}`,
          installationId: 1,
          repoId: repo.length,
          owner: "octo",
          repo,
          number: issue,
          kind: "issue",
          trigger: "label",
          requester: "alice",
          title: `Fix ${issue}`,
          body: "b",
          cloneUrl: "x",
          defaultBranch: "main",
          instructions: null,
        },
        { backend: "local" },
      )
    ).job;
    const path: Partial<Record<JobState, JobState[]>> = {
      queued: ["queued"],
      running: ["queued", "provisioning", "running"],
      succeeded: ["queued", "provisioning", "running", "reporting", "succeeded"],
    };
    for (const to of path[state] ?? []) {
      job = await store.transition(job.id, job.state, to, to === "succeeded" ? { message: "pull request opened" } : {});
      if (to === "provisioning")
        job = await store.update(job.id, {
          worker: await backend.create({ jobId: job.id, repoFullName: `octo/${repo}`, maxSeconds: 600 }, new AbortController().signal),
        });
    }
    return job;
  }

  /** Resolves once the agent sleeps, with the run's own promise (wrapped: an async function would wait for it). */
  async function sleepingRun(worker: Worker): Promise<{ done: Promise<RunResult> }> {
    const { cloneUrl } = await git.createRepo("octo", worker.jobId, { "README.md": "# demo\n" });
    let sleeping!: () => void;
    const asleep = new Promise<void>((r) => (sleeping = r));
    const done = backend.run(
      worker,
      {
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
      },
      (e) => e.type === "log" && e.line === "fake agent: sleeping" && sleeping(),
      new AbortController().signal,
    );
    await asleep;
    return { done };
  }

  it("lists jobs newest first, and filters them by state and by repository", async () => {
    const queued = await jobIn("queued", "demo");
    const done = await jobIn("succeeded", "other");
    const [all, byState, byRepo, bad] = await Promise.all([
      cli("jobs"),
      cli("jobs", "--state", "queued"),
      cli("jobs", "--repo", "octo/other"),
      cli("jobs", "--state", "sleeping"),
    ]);

    expect(all.exitCode).toBe(0);
    const lines = all.stdout.split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATE\s+ISSUE\s+BACKEND\s+CREATED \(UTC\)\s+MESSAGE$/);
    expect(lines.findIndex((l) => l.startsWith(done.id))).toBeLessThan(lines.findIndex((l) => l.startsWith(queued.id)));
    expect(all.stdout).toMatch(new RegExp(`${done.id}\\s+succeeded\\s+octo/other#${done.number}\\s+local\\s+\\S+ \\S+\\s+pull request opened`));
    expect(byState.stdout).toContain(queued.id);
    expect(byState.stdout).not.toContain(done.id);
    expect(byRepo.stdout).toContain(done.id);
    expect(byRepo.stdout).not.toContain(queued.id);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--state sleeping is not a job state/);
  });

  it("shows a job with its events, and says so when there is no such job", async () => {
    const job = await jobIn("succeeded");
    const [shown, missing] = await Promise.all([cli("show", job.id), cli("show", "jnosuchjob00")]);
    expect(shown.exitCode).toBe(0);
    expect(shown.stdout).toContain(`job ${job.id}: succeeded`);
    expect(shown.stdout).toContain(`octo/demo#${job.number} (issue, label by @alice)`);
    expect(shown.stdout).toMatch(/events:\n.*received .*\n.*state\s+\{"from":"received","to":"queued"\}/);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr.trim()).toBe("no job jnosuchjob00");
  });

  it("answers an unknown command with the usage", async () => {
    const r = await cli("frobnicate");
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^unknown command: frobnicate\nusage: agent-work <command>/);
    expect(r.stderr).toContain("reap [--dry-run]");
  });

  it("runs doctor on what this configuration uses: no gce verdict for a controller without gce", async () => {
    const r = await cli("doctor");
    // No App registered in this folder: that is the failure, named with its fix.
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/^checking the configuration…\nok {4}configuration: valid; backends local; store SQLite in /);
    expect(r.stdout).toMatch(/checking the store…\nok {4}store: SQLite .*agent-work\.sqlite opens; \d+ jobs?/);
    expect(r.stdout).toContain("FAIL  github app: APP_ID and a private key are not set\n      → run `npm start` and register the app");
    expect(r.stdout).toContain("ok    local backend: git found; bubblewrap built a trivial sandbox here");
    expect(r.stdout).not.toMatch(/gce|GCE_PROJECT/);
  });

  it("answers --help for every command, and help <command>, with that command's options and nothing run", async () => {
    const names = ["jobs", "show", "cancel", "reap", "doctor"];
    const [helps, reap, all] = await Promise.all([Promise.all(names.map((name) => cli(name, "--help"))), cli("help", "reap"), cli("--help")]);
    helps.forEach((r, i) => {
      expect(r.exitCode, names[i]).toBe(0);
      expect(r.stdout, names[i]).toMatch(new RegExp(`^usage: agent-work ${names[i]}\\b`));
      expect(r.stderr, names[i]).toBe("");
    });
    expect(helps[0]!.stdout).toContain("--state S");
    expect(reap.stdout).toContain("--dry-run  print what the pass would");
    expect(all.exitCode).toBe(0);
    expect(all.stdout).toMatch(/^usage: agent-work <command>/);
  });

  it("says its version", async () => {
    const { version } = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
    for (const r of await Promise.all([cli("--version"), cli("-V")])) {
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(`agent-work ${version}`);
    }
  });

  it("refuses to read a store that is not there, and creates none (the wrong folder)", async () => {
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), "agent-work-cli-empty-"));
    try {
      const commands = [["jobs"], ["show", "jabc"], ["cancel", "jabc"], ["reap", "--dry-run"]];
      const runs = await Promise.all(
        commands.map((args) =>
          execa(process.execPath, [...compiledArgs(CLI), ...args], {
            cwd: elsewhere,
            env: { PATH: process.env.PATH, HOME: process.env.HOME },
            extendEnv: false,
            reject: false,
          }),
        ),
      );
      for (const [i, args] of commands.entries()) {
        const r = runs[i]!;
        expect(r.exitCode, args.join(" ")).toBe(2);
        expect(r.stderr, args.join(" ")).toBe(
          `${args[0]}: no agent-work store at ${path.join(elsewhere, "data", "agent-work.sqlite")}: run this where the controller runs (the folder with its .env and data/), or set DATA_DIR (or DATABASE_URL) to the controller's`,
        );
      }
      expect(readdirSync(elsewhere)).toEqual([]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it("cancels a queued job, and refuses one that has already finished", async () => {
    const queued = await jobIn("queued");
    const done = await jobIn("succeeded");
    const [r, again] = await Promise.all([cli("cancel", queued.id), cli("cancel", done.id)]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(`job ${queued.id} cancelled (was queued)`);
    expect(await store.get(queued.id)).toMatchObject({ state: "cancelled", cancelRequestedBy: expect.stringMatching(/^cli:/) });
    expect(again.exitCode).toBe(1);
    expect(again.stderr.trim()).toBe(`job ${done.id} is already succeeded; nothing to cancel`);
  });

  it("cancels a running job: marks it cancelled, then destroys its worker and every process in it", async () => {
    const job = await jobIn("running");
    const { done: run } = await sleepingRun(job.worker!);
    const dir = path.join(dataDir, "workers", job.id);
    expect((await processesUnder(dir)).length).toBeGreaterThan(0);

    const r = await cli("cancel", job.id);
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")).toEqual([`job ${job.id} cancelled (was running)`, `worker ${job.worker!.id} destroyed`]);
    expect((await store.get(job.id))?.state).toBe("cancelled");
    expect((await run).outcome).toBe("error");
    expect(await eventually(async () => (await processesUnder(dir)).length === 0)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it("reap --dry-run says what a pass would do and changes nothing; a real pass marks, the next destroys", async () => {
    const orphan = await backend.create({ jobId: "jorphan00cli", repoFullName: "octo/demo", maxSeconds: 60 }, new AbortController().signal);
    const marks = new ReaperMarkStore(store.db);

    const dry = await cli("reap", "--dry-run");
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain("reaper dry run: nothing was changed");
    expect(dry.stdout).toContain(`would mark orphan: job jorphan00cli, worker ${orphan.id} on local (no job has its id)`);
    expect(await marks.list()).toEqual([]);
    expect(existsSync(path.join(dataDir, "workers", "jorphan00cli"))).toBe(true);

    expect((await cli("reap")).stdout).toContain(`marked orphan: job jorphan00cli`);
    const second = await cli("reap");
    expect(second.stdout).toContain(`destroyed orphan: job jorphan00cli`);
    expect(existsSync(path.join(dataDir, "workers", "jorphan00cli"))).toBe(false);
  });
});
