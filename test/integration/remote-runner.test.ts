/**
 * The worker script run over SSH against a real sshd on 127.0.0.1 (as an unprivileged user), a real
 * git smart-HTTP server and the fake agent: what the `ssh` and `gce` backends rely on.
 */
import { randomBytes } from "node:crypto";
import { rm, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import type { NodeSSH } from "node-ssh";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remoteExec } from "../../src/remote/remote-exec.js";
import { remoteJobDir } from "../../src/remote/remote-work-dir.js";
import { removeRemoteWorkDir } from "../../src/remote/remove-remote-work-dir.js";
import { runWorkerOverSsh } from "../../src/remote/run-worker-over-ssh.js";
import { SshPool, type SshTarget } from "../../src/remote/ssh-pool.js";
import type { ProgressEvent, WorkerInput } from "../../src/worker/protocol.js";
import { eventually, hostProcesses, processesUnder } from "../contract/live-processes.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { startSshd, type TestSshd } from "../support/sshd.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));
const never = new AbortController().signal;

describe("running the worker script over SSH", () => {
  let sshd: TestSshd;
  let git: GitServer;
  let pool: SshPool;
  let target: SshTarget;
  let conn: NodeSSH;
  const token = `ghs_${randomBytes(18).toString("hex")}`;
  /** Every job folder a test made, removed at the end even when a test failed halfway. */
  const made: string[] = [];

  beforeAll(async () => {
    // DEBUG3 logs every command a session runs: the canary must not be in any of them.
    [sshd, git] = await Promise.all([startSshd({ logLevel: "DEBUG3" }), startGitServer({ acceptToken: token })]);
    target = { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostKeySha256: sshd.hostKeySha256 };
    pool = new SshPool();
    conn = await pool.connection(target);
  });
  afterAll(async () => {
    await pool?.close();
    await Promise.all([sshd?.close(), git?.close()]);
    await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  function newJob(): { jobId: string; workDir: string; hostDir: string } {
    const jobId = `remote-${randomBytes(4).toString("hex")}`;
    const workDir = remoteJobDir("agent-work", jobId);
    made.push(path.join(sshd.home, workDir));
    return { jobId, workDir, hostDir: path.join(sshd.home, workDir) };
  }

  async function input(jobId: string, prompt: string, over: Partial<WorkerInput> = {}): Promise<WorkerInput> {
    const { cloneUrl } = await git.createRepo("octo", jobId, { "README.md": "# demo\n" });
    return {
      jobId,
      cloneUrl,
      baseBranch: "main",
      branch: `agent-work/${jobId}`,
      token,
      agentArgv: [process.execPath, FAKE_AGENT, "{prompt_file}"],
      prompt,
      commitMessage: `agent-work: ${jobId}`,
      author: { name: "agent-work[bot]", email: "agent-work@users.noreply.example.com" },
      agentTimeoutSeconds: 60,
      agentEnv: {},
      sandbox: { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: false },
      ...over,
    };
  }

  async function pgidOf(hostDir: string): Promise<number> {
    const text = await execa("cat", [path.join(hostDir, "worker.pid")]).then((r) => r.stdout.trim());
    return Number(text);
  }

  async function groupMembers(pgid: number): Promise<string[]> {
    const r = await execa("pgrep", ["-g", String(pgid)], { reject: false });
    return r.stdout.split("\n").filter(Boolean);
  }

  it("clones, runs the agent in bubblewrap as the SSH user, and pushes the branch to the git server", async () => {
    const { jobId, workDir, hostDir } = newJob();
    const spec = await input(jobId, "Fix it. FAKE_AGENT:edit");
    const events: ProgressEvent[] = [];
    const result = await runWorkerOverSsh(conn, { workDir, input: spec, onEvent: (e) => events.push(e), signal: never, maxSeconds: 120 });

    expect(result).toMatchObject({ outcome: "pushed", branch: spec.branch, aborted: false, filesChanged: 1 });
    expect(result.computeSeconds).toBeGreaterThan(0);
    expect(await git.branchSha("octo", jobId, spec.branch)).toBe(result.headSha);
    expect(await git.readFile("octo", jobId, spec.branch, "AGENT_WAS_HERE.md")).toContain("the fake agent was here");
    const steps = events.flatMap((e) => (e.type === "step" ? [`${e.step}:${e.status}`] : []));
    expect(steps).toEqual([
      "clone:started",
      "clone:finished",
      "agent:started",
      "agent:finished",
      "commit:started",
      "commit:finished",
      "push:started",
      "push:finished",
    ]);
    // The folder is the SSH user's and private; the token is nowhere in what came back.
    const st = await stat(hostDir);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).not.toBe(0);
    expect(JSON.stringify(events)).not.toContain(token);

    await removeRemoteWorkDir(conn, workDir, { graceMs: 1000 });
    await expect(stat(hostDir)).rejects.toThrow(/ENOENT/);
  });

  it("an abort kills the whole remote process tree, not just the channel, and says it was aborted", async () => {
    const { jobId, workDir, hostDir } = newJob();
    const ac = new AbortController();
    let pgid = 0;
    let seen: string[] = [];
    let argvs = "";
    let environs = "";
    const result = await runWorkerOverSsh(conn, {
      workDir,
      input: await input(jobId, "FAKE_AGENT:sleep"),
      onEvent: (e) => {
        if (e.type !== "log" || e.line !== "fake agent: sleeping") return;
        void (async () => {
          pgid = await pgidOf(hostDir);
          seen = await groupMembers(pgid);
          // Every process on the host, while the token is in use: none carries it in its argv or environment.
          const all = await hostProcesses();
          argvs = all.map((p) => p.cmdline).join("\n");
          environs = all.map((p) => p.environ).join("\n");
          ac.abort();
        })();
      },
      signal: ac.signal,
      maxSeconds: 120,
      killGraceMs: 1000,
    });

    expect(seen.length, "the worker's group was running").toBeGreaterThan(0);
    expect(result).toMatchObject({ outcome: "error", aborted: true });
    expect(await eventually(async () => (await groupMembers(pgid)).length === 0)).toBe(true);
    expect(await eventually(async () => (await processesUnder(hostDir)).length === 0)).toBe(true);
    expect(argvs).toContain("fake-agent.mjs");
    expect(argvs).not.toContain(token);
    expect(environs).not.toContain(token);
    await removeRemoteWorkDir(conn, workDir, { graceMs: 1000 });
  });

  it("an abort also kills an agent that runs without bubblewrap in a session of its own", async () => {
    const { jobId, workDir, hostDir } = newJob();
    const ac = new AbortController();
    let agentPids: number[] = [];
    const result = await runWorkerOverSsh(conn, {
      workDir,
      input: await input(jobId, "FAKE_AGENT:sleep", { sandbox: { kind: "none" } }),
      onEvent: (e) => {
        if (e.type !== "log" || e.line !== "fake agent: sleeping") return;
        void (async () => {
          agentPids = (await processesUnder(hostDir)).filter((p) => p.cmdline.includes("fake-agent.mjs")).map((p) => p.pid);
          ac.abort();
        })();
      },
      signal: ac.signal,
      maxSeconds: 120,
      killGraceMs: 1000,
    });
    expect(result.aborted).toBe(true);
    expect(agentPids.length).toBeGreaterThan(0);
    expect(await eventually(async () => (await processesUnder(hostDir)).length === 0)).toBe(true);
    await removeRemoteWorkDir(conn, workDir, { graceMs: 1000 });
  });

  it("kills a worker that outlives maxSeconds and reports timed_out", async () => {
    const { jobId, workDir, hostDir } = newJob();
    const result = await runWorkerOverSsh(conn, {
      workDir,
      input: await input(jobId, "FAKE_AGENT:sleep"),
      onEvent: () => {},
      signal: never,
      maxSeconds: 2,
      killGraceMs: 1000,
    });
    expect(result).toMatchObject({ outcome: "timed_out", aborted: false });
    expect(result.message).toMatch(/2s limit/);
    expect(await eventually(async () => (await processesUnder(hostDir)).length === 0)).toBe(true);
    await removeRemoteWorkDir(conn, workDir, { graceMs: 1000 });
  });

  it("removing the work dir kills what still runs in it, and a missing dir is success", async () => {
    const { jobId, workDir, hostDir } = newJob();
    let removed: Promise<void> | undefined;
    const result = await runWorkerOverSsh(conn, {
      workDir,
      input: await input(jobId, "FAKE_AGENT:sleep", { sandbox: { kind: "none" } }),
      onEvent: (e) => {
        if (e.type === "log" && e.line === "fake agent: sleeping") removed = removeRemoteWorkDir(conn, workDir, { graceMs: 1000 });
      },
      signal: never,
      maxSeconds: 120,
    });
    await removed;
    expect(result.outcome).not.toBe("pushed");
    expect(await eventually(async () => (await processesUnder(hostDir)).length === 0)).toBe(true);
    await expect(stat(hostDir)).rejects.toThrow(/ENOENT/);
    await expect(removeRemoteWorkDir(conn, workDir)).resolves.toBeUndefined();
  });

  it("starts the worker with one SSH command: its files travel with the input, no upload of their own first", async () => {
    const { jobId, workDir, hostDir } = newJob();
    const before = sshd.logs().length;
    const result = await runWorkerOverSsh(conn, { workDir, input: await input(jobId, "FAKE_AGENT:none"), onEvent: () => {}, signal: never, maxSeconds: 60 });
    expect(result.outcome).toBe("no_changes");
    const commands = sshd
      .logs()
      .slice(before)
      .filter((l) => /run_command/.test(l) && l.includes(jobId));
    expect(commands).toHaveLength(1);
    expect(commands[0]).toMatch(/setsid -w/);
    // The files are unpacked where they always were, private to the SSH user, before the worker ran from them.
    const entry = await stat(path.join(hostDir, "worker", "agent-work-worker.mjs"));
    expect(entry.mode & 0o777).toBe(0o600);
    expect((await stat(path.join(hostDir, "worker"))).mode & 0o777).toBe(0o700);
    await removeRemoteWorkDir(conn, workDir, { graceMs: 1000 });
  });

  it("never shows the token to the sshd: no command it logged carries it", () => {
    const logs = sshd.logs();
    expect(
      logs.some((l) => /run_command .*setsid -w/.test(l)),
      "DEBUG3 logs the worker's start command",
    ).toBe(true);
    expect(logs.join("\n")).not.toContain(token);
  });

  it("quotes the work dir: a path with shell syntax in it is a folder name, not a command", async () => {
    const workDir = `agent-work/odd dir; touch pwned-${randomBytes(3).toString("hex")} '$(id)'`;
    made.push(path.join(sshd.home, workDir));
    const r = await runWorkerOverSsh(conn, {
      workDir,
      input: await input(newJob().jobId, "FAKE_AGENT:none"),
      onEvent: () => {},
      signal: never,
      maxSeconds: 60,
    });
    expect(r.outcome).toBe("no_changes");
    const listing = await remoteExec(conn, "ls agent-work; ls");
    expect(listing.stdout).toContain("odd dir; touch");
    expect(listing.stdout).not.toMatch(/^pwned-/m);
    await removeRemoteWorkDir(conn, workDir, { graceMs: 1000 });
  });
});

describe("the SSH pool", () => {
  let sshd: TestSshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.close();
  });

  const targetOf = (s: TestSshd, over: Partial<SshTarget> = {}): SshTarget => ({
    host: s.host,
    port: s.port,
    username: s.username,
    privateKey: s.privateKey,
    ...over,
  });

  it("keeps one connection per host and reconnects after it broke", async () => {
    const pool = new SshPool();
    try {
      const [a, b] = await Promise.all([pool.connection(targetOf(sshd)), pool.connection(targetOf(sshd))]);
      expect(a).toBe(b);
      a.connection?.end();
      await eventually(async () => !a.isConnected());
      const c = await pool.connection(targetOf(sshd));
      expect(c).not.toBe(a);
      expect((await remoteExec(c, "echo ok")).stdout.trim()).toBe("ok");
    } finally {
      await pool.close();
    }
  });

  it("refuses a host whose key is not the pinned one, and says which key it saw", async () => {
    const pool = new SshPool();
    try {
      const wrong = "SHA256:" + Buffer.alloc(32, 7).toString("base64").replace(/=+$/, "");
      await expect(pool.connection(targetOf(sshd, { hostKeySha256: wrong }))).rejects.toThrow(
        new RegExp(
          `host key of 127.0.0.1:${sshd.port} changed: it presented ${sshd.hostKeySha256.replace(/[+/]/g, "\\$&")}, but the key pinned for it in the configuration is ${wrong.replace(/[+/]/g, "\\$&")}; refusing the host`,
        ),
      );
      await expect(pool.connection(targetOf(sshd, { hostKeySha256: sshd.hostKeySha256 }))).resolves.toBeDefined();
    } finally {
      await pool.close();
    }
  });

  it("pins the first key it sees when none is configured", async () => {
    const warnings: object[] = [];
    const pool = new SshPool({ log: { warn: (o) => warnings.push(o), error: () => {}, debug: () => {} } });
    try {
      await pool.connection(targetOf(sshd));
      expect(await pool.recordedHostKey(sshd)).toBe(sshd.hostKeySha256);
      expect(warnings).toEqual([expect.objectContaining({ hostKeySha256: sshd.hostKeySha256 })]);
    } finally {
      await pool.close();
    }
  });
});
