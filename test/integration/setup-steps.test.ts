/**
 * Setup steps and the dependency cache, through the real worker script in the real bubblewrap
 * sandbox (as nobody: the tests run as root), laid out as the local and ssh backends lay out a job
 * folder (`<root>/<job id>/work`), against a real git server. The agent is a shell command here, so
 * each test can say what it looks at.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../src/jobs/types.js";
import { createProgressParser } from "../../src/worker/parse-progress.js";
import type { ProgressEvent, WorkerInput, WorkerResult } from "../../src/worker/protocol.js";
import { workerScriptPath } from "../../src/worker/worker-script-path.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { FAKE_AGENT_CONFIG, startHarness, type Harness } from "../support/harness.js";
import { slowAgent } from "../support/slow-agent.js";
import { startSshd, type TestSshd } from "../support/sshd.js";
import { ssh, type SshBackend } from "../../src/backends/ssh/ssh-backend.js";

const TOKEN = `ghs_${randomBytes(18).toString("hex")}`;
const MB = 1024 * 1024;

interface Run {
  result: WorkerResult;
  events: ProgressEvent[];
  /** `stream: line` for every log line. */
  lines: string[];
  repo: string;
}

let git: GitServer;
/** A plain HTTP server on the host's 127.0.0.1: reachable with the host's network namespace only. */
let probe: http.Server;
let probeUrl: string;
const probeHits: string[] = [];
let root: string;
const scratch: string[] = [];

beforeAll(async () => {
  git = await startGitServer({ acceptToken: TOKEN });
  probe = http.createServer((req, res) => {
    probeHits.push(req.url ?? "");
    res.end("hello from the host");
  });
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  root = await mkdtemp(path.join(os.tmpdir(), "agent-work-setup-root-"));
  scratch.push(root);
});
afterAll(async () => {
  await git?.close();
  await new Promise((r) => probe?.close(r));
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

let repos = 0;
async function freshRepo(owner = "octo") {
  const name = `repo-${++repos}`;
  const made = await git.createRepo(owner, name, { "README.md": "# demo\n", ".gitignore": "node_modules/\n" });
  return { cloneUrl: made.cloneUrl, key: `${owner}+${name}-${repos}` };
}

function input(cloneUrl: string, over: Partial<WorkerInput> & { agent?: string } = {}): WorkerInput {
  const { agent = "echo the agent ran; echo done > DONE.md", ...rest } = over;
  return {
    jobId: "job-1",
    cloneUrl,
    baseBranch: "main",
    branch: "agent/1-setup",
    token: TOKEN,
    agentArgv: ["/bin/sh", "-c", agent],
    prompt: "do the thing",
    commitMessage: "agent-work: setup test",
    author: { name: "agent-work[bot]", email: "agent-work@users.noreply.example.com" },
    agentTimeoutSeconds: 30,
    agentEnv: {},
    sandbox: { kind: "bwrap", roBinds: [], shareNet: false },
    ...rest,
  };
}

let jobs = 0;
/** One worker run in a fresh job folder `<root>/<job id>/work` under `under` (default: the shared root). */
async function runWorker(spec: WorkerInput, under = root): Promise<Run> {
  const work = path.join(under, `j${++jobs}`, "work");
  await mkdir(work, { recursive: true });
  const events: ProgressEvent[] = [];
  const parser = createProgressParser((e) => events.push(e));
  const child = execa(process.execPath, [workerScriptPath], {
    cwd: work,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: path.dirname(work), LANG: "C.UTF-8" },
    extendEnv: false,
    input: JSON.stringify(spec) + "\n",
    reject: false,
    buffer: { stdout: false, stderr: true },
  });
  child.stdout!.on("data", (chunk: Buffer) => parser.push(chunk));
  await child;
  parser.end();
  const result = events.flatMap((e) => (e.type === "result" ? [e.result] : []))[0];
  if (!result) throw new Error(`no result: ${JSON.stringify(events.slice(-5))}`);
  const lines = events.flatMap((e) => (e.type === "log" ? [`${e.stream}: ${e.line}`] : []));
  return { result, events, lines, repo: path.join(work, "repo") };
}

function steps(run: Run): string[] {
  return run.events.flatMap((e) => (e.type === "step" ? [`${e.step}:${e.status}`] : []));
}

function cacheData(key: string, under = root): string {
  return path.join(under, ".dependency-cache", key, "data");
}

/** Holds a cache's lock from outside, as another job of the repository would. */
async function holdLock(key: string, under = root): Promise<ChildProcess> {
  const home = path.join(under, ".dependency-cache", key);
  await mkdir(home, { recursive: true });
  const holder = spawn("flock", ["--exclusive", path.join(home, "lock"), "sh", "-c", "echo held; exec sleep 600"], { stdio: ["ignore", "pipe", "ignore"] });
  await new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve()));
  return holder;
}

describe("setup steps", () => {
  it("run in the work tree before the agent, their output in the log, and the agent after them", async () => {
    const { cloneUrl, key } = await freshRepo();
    const run = await runWorker(
      input(cloneUrl, {
        setup: {
          commands: ["echo installing; mkdir -p node_modules/dep && echo 'module.exports = 42' > node_modules/dep/index.js", "id -u; ls node_modules"],
          timeoutSeconds: 20,
        },
        cache: { key, maxMb: 100 },
        agent: "cat node_modules/dep/index.js > SAW_DEP.txt; echo the agent ran",
      }),
    );
    expect(run.result).toMatchObject({ outcome: "pushed" });
    expect(steps(run)).toEqual([
      "clone:started",
      "clone:finished",
      "setup:started",
      "setup:finished",
      "agent:started",
      "agent:finished",
      "commit:started",
      "commit:finished",
      "push:started",
      "push:finished",
    ]);
    // Setup's output has a stream of its own, before the agent's; it ran as the agent does (nobody).
    const setupAt = run.lines.indexOf("setup: installing");
    expect(setupAt).toBeGreaterThanOrEqual(0);
    expect(run.lines).toContain("setup: 65534");
    expect(run.lines).toContain("setup: dep");
    expect(run.lines.indexOf("stdout: the agent ran")).toBeGreaterThan(setupAt);
    expect(run.lines.some((l) => /^worker: setup step 1 of 2 \(`echo installing; mkdir .*`\) finished in [\d.]+ s$/.test(l))).toBe(true);
    // What setup installed was there for the agent, and (ignored by git) not in the commit.
    expect(await git.readFile("octo", path.basename(cloneUrl, ".git"), "agent/1-setup", "SAW_DEP.txt")).toBe("module.exports = 42\n");
    expect(await git.readFile("octo", path.basename(cloneUrl, ".git"), "agent/1-setup", "node_modules/dep/index.js")).toBeNull();
  });

  it("have the host's network even when the agent has none: a server on the host's 127.0.0.1 answers setup, not the agent", async () => {
    const { cloneUrl, key } = await freshRepo();
    const fetchFrom = (who: string) =>
      `node -e "fetch('${probeUrl}/${who}').then(r => r.text()).then(t => console.log('${who} got: ' + t), e => console.log('${who} could not connect: ' + e.cause?.code))"`;
    const hitsBefore = probeHits.length;
    const run = await runWorker(
      input(cloneUrl, {
        setup: { commands: [fetchFrom("setup"), "readlink /proc/self/ns/net"], timeoutSeconds: 20 },
        cache: { key, maxMb: 100 },
        sandbox: { kind: "bwrap", roBinds: [], shareNet: false },
        agent: `${fetchFrom("agent")}; readlink /proc/self/ns/net; mkdir -p "$npm_config_cache" 2>/dev/null && echo agent wrote the cache || echo agent cannot write the cache; echo done > DONE.md`,
      }),
    );
    expect(run.result.outcome).toBe("pushed");
    expect(run.lines).toContain("setup: setup got: hello from the host");
    expect(run.lines.some((l) => l.startsWith("stdout: agent could not connect"))).toBe(true);
    expect(probeHits.slice(hitsBefore)).toEqual(["/setup"]);
    // Setup shared the host's network namespace; the agent had one of its own.
    const hostNs = (await execa("readlink", ["/proc/self/ns/net"])).stdout.trim();
    expect(run.lines).toContain(`setup: ${hostNs}`);
    expect(run.lines.filter((l) => l.startsWith("stdout: net:["))).toHaveLength(1);
    expect(run.lines).not.toContain(`stdout: ${hostNs}`);
    // Without the network, the agent only reads the cache: what it left would run in the next setup, with the network.
    expect(run.lines).toContain("stdout: agent cannot write the cache");
  });

  it("end the job at the first that fails, naming it and its exit code; the agent does not run", async () => {
    const { cloneUrl } = await freshRepo();
    const run = await runWorker(
      input(cloneUrl, { setup: { commands: ["echo first", "echo second; exit 7", "echo never"], timeoutSeconds: 20 }, agent: "echo the agent ran" }),
    );
    expect(run.result).toMatchObject({ outcome: "error", message: "setup step 2 of 3 (`echo second; exit 7`) exited with code 7; the agent did not run" });
    expect(steps(run)).toEqual(["clone:started", "clone:finished", "setup:started", "setup:failed", "agent:skipped", "commit:skipped", "push:skipped"]);
    expect(run.lines).toContain("setup: second");
    expect(run.lines).not.toContain("setup: never");
    expect(run.lines).not.toContain("stdout: the agent ran");
    expect(await git.branchSha("octo", path.basename(cloneUrl, ".git"), "agent/1-setup")).toBeNull();
  });

  it("stop at their own time limit", async () => {
    const { cloneUrl } = await freshRepo();
    const started = Date.now();
    const run = await runWorker(input(cloneUrl, { setup: { commands: ["sleep 60"], timeoutSeconds: 1 } }));
    expect(run.result).toMatchObject({
      outcome: "error",
      message: "setup step 1 (`sleep 60`) ran past setup's limit of 1 s and was stopped; the agent did not run",
    });
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

describe("the dependency cache", () => {
  it("keeps what one job's setup wrote for the next job of the same repository, and shows it to no other", async () => {
    const a = await freshRepo();
    const b = await freshRepo();
    const marker = `from-run-1-${randomBytes(4).toString("hex")}`;
    const first = await runWorker(
      input(a.cloneUrl, {
        setup: { commands: [`mkdir -p "$npm_config_cache" && echo ${marker} > "$npm_config_cache/marker"`], timeoutSeconds: 20 },
        cache: { key: a.key, maxMb: 100 },
      }),
    );
    expect(first.result.outcome).toBe("pushed");
    // On the host, in the repository's own folder, owned by the sandbox's user.
    expect((await readFile(path.join(cacheData(a.key), "npm", "marker"), "utf8")).trim()).toBe(marker);
    expect((await stat(path.join(cacheData(a.key), "npm", "marker"))).uid).toBe(65534);

    const second = await runWorker(
      input(a.cloneUrl, { setup: { commands: ['cat "$npm_config_cache/marker"'], timeoutSeconds: 20 }, cache: { key: a.key, maxMb: 100 } }),
    );
    expect(second.result.outcome).toBe("pushed");
    expect(second.lines).toContain(`setup: ${marker}`);

    // Another repository on the same host: its own empty cache, and the first one's folder is not even there.
    const other = await runWorker(
      input(b.cloneUrl, {
        setup: {
          commands: [
            `cat "$npm_config_cache/marker" 2>/dev/null || echo no marker; ls ${path.join(root, ".dependency-cache")} 2>/dev/null || echo no cache root; cat ${path.join(cacheData(a.key), "npm", "marker")} 2>/dev/null || echo no way to the other`,
          ],
          timeoutSeconds: 20,
        },
        cache: { key: b.key, maxMb: 100 },
      }),
    );
    expect(other.result.outcome).toBe("pushed");
    expect(other.lines).toEqual(expect.arrayContaining(["setup: no marker", "setup: no cache root", "setup: no way to the other"]));
    expect(other.lines.join("\n")).not.toContain(marker);
  });

  it("goes without the cache while another job of the repository holds it", async () => {
    const { cloneUrl, key } = await freshRepo();
    const holder = await holdLock(key);
    try {
      const run = await runWorker(
        input(cloneUrl, { setup: { commands: ['echo "cache at ${npm_config_cache:-none}"'], timeoutSeconds: 20 }, cache: { key, maxMb: 100 } }),
      );
      expect(run.result.outcome).toBe("pushed");
      expect(run.lines).toContain("worker: dependency cache: none for this job (another job of this repository on this host is using it)");
      expect(run.lines).toContain("setup: cache at none");
    } finally {
      holder.kill();
    }
  });

  it("is emptied oldest first when the host's caches hold more than the cap, skipping one in use", async () => {
    const under = await mkdtemp(path.join(os.tmpdir(), "agent-work-evict-"));
    scratch.push(under);
    const { cloneUrl, key } = await freshRepo();
    // Three caches other jobs left: 4 MB each, used 3, 2 and 1 hours ago; the oldest is in use now.
    const hour = 3600_000;
    for (const [name, age] of [
      ["octo+in-use-1", 3],
      ["octo+older-2", 2],
      ["octo+newer-3", 1],
    ] as const) {
      await mkdir(cacheData(name, under), { recursive: true });
      await writeFile(path.join(cacheData(name, under), "blob"), randomBytes(4 * MB));
      const when = new Date(Date.now() - age * hour);
      await writeFile(path.join(under, ".dependency-cache", name, "last-used"), "");
      await utimes(path.join(under, ".dependency-cache", name, "last-used"), when, when);
    }
    const holder = await holdLock("octo+in-use-1", under);
    try {
      // This job's setup adds 3 MB: 15 MB in all, over a cap of 12.
      const run = await runWorker(
        input(cloneUrl, {
          setup: { commands: ['mkdir -p "$PIP_CACHE_DIR" && head -c 3145728 /dev/urandom > "$PIP_CACHE_DIR/wheel"'], timeoutSeconds: 20 },
          cache: { key, maxMb: 12 },
        }),
        under,
      );
      expect(run.result.outcome).toBe("pushed");
      expect(run.lines.some((l) => /dependency cache: 3 MB for this repository; 4 on this host hold 15 MB of the 12 MB cap/.test(l))).toBe(true);
    } finally {
      holder.kill();
    }
    expect(existsSync(path.join(cacheData("octo+in-use-1", under), "blob"))).toBe(true);
    // The oldest one not in use went, and that was enough.
    expect(existsSync(cacheData("octo+older-2", under))).toBe(false);
    expect(existsSync(path.join(under, ".dependency-cache", "octo+older-2", "lock"))).toBe(true);
    expect(existsSync(path.join(cacheData("octo+newer-3", under), "blob"))).toBe(true);
    expect(existsSync(path.join(cacheData(key, under), "pip", "wheel"))).toBe(true);
  });

  it("is hostile input: a link in it is measured, handed over and removed as a link, never followed", async () => {
    const under = await mkdtemp(path.join(os.tmpdir(), "agent-work-hostile-cache-"));
    scratch.push(under);
    const { cloneUrl, key } = await freshRepo();
    // A folder of the host's that the links point at: 8 MB of someone else's data.
    const outside = await mkdtemp(path.join(os.tmpdir(), "agent-work-outside-"));
    scratch.push(outside);
    await writeFile(path.join(outside, "precious"), randomBytes(8 * MB));
    const plant = `mkdir -p "$npm_config_cache" && ln -s ${outside} "$npm_config_cache/escape" && ln -s ${path.join(outside, "precious")} "$npm_config_cache/precious" && ln -s / "$npm_config_cache/root" && head -c 2097152 /dev/urandom > "$npm_config_cache/blob"`;
    const first = await runWorker(input(cloneUrl, { setup: { commands: [plant], timeoutSeconds: 20 }, cache: { key, maxMb: 100 } }), under);
    expect(first.result.outcome).toBe("pushed");
    // 2 MB of its own, not the 8 MB behind the link.
    expect(first.lines.some((l) => /dependency cache: 2 MB for this repository; 1 on this host hold 2 MB of the 100 MB cap/.test(l))).toBe(true);
    // The next job hands the cache to the sandbox's user again, and then empties it: over a cap of 1 MB.
    const second = await runWorker(input(cloneUrl, { setup: { commands: ["true"], timeoutSeconds: 20 }, cache: { key, maxMb: 1 } }), under);
    expect(second.result.outcome).toBe("pushed");
    expect(second.lines.some((l) => l.includes("dependency cache: evicted this repository's cache (2 MB"))).toBe(true);
    expect(existsSync(cacheData(key, under))).toBe(false);
    // What the links pointed at is untouched: there, the same size, still root's.
    const precious = await lstat(path.join(outside, "precious"));
    expect(precious.size).toBe(8 * MB);
    expect(precious.uid).toBe(0);
    expect((await stat(outside)).uid).toBe(0);
    expect(existsSync("/etc/passwd")).toBe(true);
  });
});

describe("through the controller and the local backend", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /** The last text the status comment and the check run showed. */
  function surfaces(harness: Harness, job: Job) {
    const comment = harness.github
      .callsTo("PATCH", "/issues/comments/:id")
      .filter((c) => c.path.endsWith(`/${job.commentId}`))
      .at(-1)!.body.body as string;
    const check = harness.github
      .callsTo("PATCH", "/check-runs/:id")
      .filter((c) => c.path.endsWith(`/${job.checkRunId}`))
      .at(-1)!.body as { output: { title: string; summary: string } };
    return { comment, check };
  }

  it("shows setup as a step of its own with its duration, logs its output, and the next job's setup finds what the first left in the cache", async () => {
    const count = `mkdir -p "$npm_config_cache" && echo run >> "$npm_config_cache/runs" && echo "setup saw $(wc -l < "$npm_config_cache/runs") runs"`;
    // The first job's agent runs until the check run has shown setup done: a job quicker than one
    // PATCH round trip would go from its clone straight to its final view (updates coalesce).
    const agent = slowAgent();
    h = await startHarness({ env: agent.env, autoSchedule: true, repoConfigYaml: FAKE_AGENT_CONFIG(`network: none\nsetup:\n  - ${JSON.stringify(count)}\n`) });
    await h.deliverLabel({ body: agent.body });
    const harness = h;
    const setupDone = /^- \[x\] setup — \S+.* \(1 command\)$/m;
    const live = () => harness.github.callsTo("PATCH", "/check-runs/:id").map((c) => (c.body as { output?: { summary?: string } }).output?.summary ?? "");
    // The check run's view while the job runs, with setup done.
    await expect.poll(() => live().some((summary) => setupDone.test(summary)), { timeout: 30_000 }).toBe(true);
    agent.finish();
    await h.settle();
    const [first] = await h.controller.store.list();
    expect(first!.state).toBe("succeeded");
    // From the queued check run on, between clone and agent.
    expect(h.github.callsTo("POST", "/check-runs")[0]!.body.output.summary).toContain("- [ ] setup\n");
    expect(first!.steps.map((s) => s.name)).toEqual(["queued", "worker", "clone", "setup", "agent", "commit", "push", "pull request"]);
    const setup = first!.steps.find((s) => s.name === "setup")!;
    expect(setup).toMatchObject({ status: "done", detail: "1 command" });
    expect(setup.finishedAt! - setup.startedAt!).toBeGreaterThanOrEqual(0);
    const { comment, check } = surfaces(h, first!);
    expect(comment).toMatch(/^- \[x\] setup — \S+.* \(1 command\)$/m);
    expect(check.output.summary).toContain("pull/100");
    const log = (await h.controller.logs.read(first!.id)).map((l) => `${l.stream}: ${l.line}`);
    expect(log).toContain("setup: setup saw 1 runs");

    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    const [second] = await h.controller.store.list();
    expect(second!.id).not.toBe(first!.id);
    expect(second!.state).toBe("succeeded");
    expect((await h.controller.logs.read(second!.id)).map((l) => `${l.stream}: ${l.line}`)).toContain("setup: setup saw 2 runs");
  });

  it("ends the job at a failing setup command with its name and exit code in the status comment and the check run", async () => {
    h = await startHarness({ repoConfigYaml: FAKE_AGENT_CONFIG(`setup: ["echo preparing", "exit 3"]\n`) });
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job).toMatchObject({ state: "failed", message: "setup step 2 of 2 (`exit 3`) exited with code 3; the agent did not run" });
    expect(job!.steps.filter((s) => ["setup", "agent", "commit", "push"].includes(s.name)).map((s) => `${s.name}:${s.status}`)).toEqual([
      "setup:failed",
      "agent:skipped",
      "commit:skipped",
      "push:skipped",
    ]);
    const { comment, check } = surfaces(h, job!);
    expect(comment).toContain("**Result:** ❌ Failed: setup step 2 of 2 (`exit 3`) exited with code 3; the agent did not run.");
    expect(check.output.title).toContain("setup step 2 of 2");
    expect(h.github.pulls).toHaveLength(0);
  });
});

describe("on the ssh backend (an unprivileged login user)", () => {
  let sshd: TestSshd;
  let backend: SshBackend;
  let workRoot: string;

  beforeAll(async () => {
    sshd = await startSshd();
    const rel = `agent-work-setup-${randomBytes(4).toString("hex")}`;
    workRoot = path.join(sshd.home, rel);
    backend = ssh.create({
      hosts: [
        {
          name: "setup-host",
          address: sshd.host,
          port: sshd.port,
          user: sshd.username,
          privateKey: sshd.privateKey,
          hostKeySha256: sshd.hostKeySha256,
          slots: 2,
          labels: [],
          workRoot: rel,
        },
      ],
      killGraceMs: 1000,
    });
  });
  afterAll(async () => {
    await backend?.close();
    await sshd?.close();
    await rm(workRoot, { recursive: true, force: true });
  });

  async function runOverSsh(jobId: string, spec: WorkerInput): Promise<{ result: WorkerResult; lines: string[] }> {
    const worker = await backend.create({ jobId, repoFullName: "octo/demo", maxSeconds: 120 }, new AbortController().signal);
    const events: ProgressEvent[] = [];
    try {
      const result = await backend.run(worker, { ...spec, jobId }, (e) => events.push(e), new AbortController().signal);
      return { result, lines: events.flatMap((e) => (e.type === "log" ? [`${e.stream}: ${e.line}`] : [])) };
    } finally {
      await backend.destroy(worker);
    }
  }

  it("setup has the network and the next job of the repository on that host finds its cache, beside the job folders", async () => {
    const { cloneUrl, key } = await freshRepo();
    const hitsBefore = probeHits.length;
    const first = await runOverSsh(
      "jsetupssh1",
      input(cloneUrl, {
        setup: {
          commands: [
            `node -e "fetch('${probeUrl}/ssh-setup').then(r => r.text()).then(t => console.log('setup got: ' + t))"`,
            'mkdir -p "$CARGO_HOME" && echo kept > "$CARGO_HOME/marker"',
          ],
          timeoutSeconds: 30,
        },
        cache: { key, maxMb: 100 },
      }),
    );
    expect(first.result.outcome).toBe("pushed");
    expect(first.lines).toContain("setup: setup got: hello from the host");
    expect(probeHits.slice(hitsBefore)).toEqual(["/ssh-setup"]);
    expect(await readFile(path.join(workRoot, ".dependency-cache", key, "data", "cargo", "marker"), "utf8")).toBe("kept\n");

    const second = await runOverSsh(
      "jsetupssh2",
      input(cloneUrl, { setup: { commands: ['cat "$CARGO_HOME/marker"'], timeoutSeconds: 30 }, cache: { key, maxMb: 100 } }),
    );
    expect(second.result.outcome).toBe("pushed");
    expect(second.lines).toContain("setup: kept");
    // The cache folder is no job folder: the backend lists none left behind.
    expect(await backend.list()).toEqual([]);
  });
});
