import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { local } from "../../src/backends/local/local-backend.js";
import { loadBackendModule } from "../../src/backends/registry.js";
import type { Backend, RunSpec } from "../../src/backends/types.js";
import type { ProgressEvent } from "../../src/worker/protocol.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { backendContract } from "./backend.js";
import { eventually, isAlive, processesUnder } from "./live-processes.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));

backendContract("local", async () => {
  const rootDir = await mkdtemp(path.join(os.tmpdir(), "agent-work-local-"));
  return {
    backend: local.create({ rootDir, maxConcurrent: 4, killGraceMs: 2000 }),
    cleanup: () => rm(rootDir, { recursive: true, force: true }),
    liveProcesses: async (w) => (await processesUnder(path.join(rootDir, w.jobId))).map((p) => `${p.pid} ${p.cmdline}`),
  };
});

describe("the local backend, beyond the contract", () => {
  let rootDir: string;
  let backend: Backend;
  let git: GitServer;
  const token = `ghs_${randomBytes(18).toString("hex")}`;
  const never = new AbortController().signal;

  beforeAll(async () => {
    rootDir = await mkdtemp(path.join(os.tmpdir(), "agent-work-local-"));
    backend = local.create({ rootDir, maxConcurrent: 3, killGraceMs: 2000 });
    git = await startGitServer({ acceptToken: token });
  });
  afterAll(async () => {
    await git?.close();
    await rm(rootDir, { recursive: true, force: true });
  });

  async function spec(jobId: string, prompt: string, over: Partial<RunSpec> = {}): Promise<RunSpec> {
    const { cloneUrl } = await git.createRepo("octo", jobId, { "README.md": "# demo\n" });
    return {
      jobId,
      cloneUrl,
      baseBranch: "main",
      branch: `agent-work/${jobId}`,
      token,
      agentArgv: [process.execPath, FAKE_AGENT, "{prompt_file}"],
      prompt,
      commitMessage: "agent-work",
      author: { name: "agent-work[bot]", email: "bot@example.com" },
      agentTimeoutSeconds: 60,
      agentEnv: {},
      sandbox: { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: false },
      ...over,
    };
  }

  it("is found in the registry by its name", async () => {
    expect(await loadBackendModule("local")).toBe(local);
    expect(await loadBackendModule("nope")).toBeUndefined();
  });

  it("reports its configured maximum as capacity", async () => {
    expect((await backend.capacity()).max).toBe(3);
  });

  it("keeps each worker in <rootDir>/<jobId> with a worker.json, named local-<jobId>", async () => {
    const w = await backend.create({ jobId: "job-layout", repoFullName: "octo/demo", maxSeconds: 60 }, never);
    expect(w.id).toBe("local-job-layout");
    const record = JSON.parse(await readFile(path.join(rootDir, "job-layout", "worker.json"), "utf8"));
    expect(record).toMatchObject({ jobId: "job-layout", createdAt: w.createdAt });
    await backend.destroy(w);
    expect(existsSync(path.join(rootDir, "job-layout"))).toBe(false);
  });

  it("refuses a job id that would leave its root folder", async () => {
    await expect(backend.create({ jobId: "../escape", repoFullName: "octo/demo", maxSeconds: 60 }, never)).rejects.toThrow(/not usable/);
    await expect(backend.destroy({ id: "local-..", backend: "local", jobId: "..", createdAt: 0, meta: {} })).rejects.toThrow(/not usable/);
  });

  it("gives the worker a minimal environment, never the controller's secrets", async () => {
    process.env.AGENT_WORK_TEST_PRIVATE_KEY = "controller-secret-canary";
    try {
      const w = await backend.create({ jobId: "job-env", repoFullName: "octo/demo", maxSeconds: 60 }, never);
      const ac = new AbortController();
      let environ = "";
      await backend.run(
        w,
        await spec("job-env", "FAKE_AGENT:sleep"),
        (e: ProgressEvent) => {
          if (e.type !== "log" || e.line !== "fake agent: sleeping") return;
          void (async () => {
            const pid = (await backend.list()).find((x) => x.id === w.id)?.meta.pid;
            environ = (await readFile(`/proc/${pid}/environ`, "latin1")).split("\0").filter(Boolean).sort().join("\n");
            ac.abort();
          })();
        },
        ac.signal,
      );
      expect(environ).not.toContain("controller-secret-canary");
      expect(environ.split("\n").map((kv) => kv.split("=")[0])).toEqual(["HOME", "LANG", "PATH"]);
      expect(environ).toContain(`HOME=${path.join(rootDir, "job-env")}`);
      await backend.destroy(w);
    } finally {
      delete process.env.AGENT_WORK_TEST_PRIVATE_KEY;
    }
  });

  it("kills a worker that outlives JobSpec.maxSeconds and reports timed_out", async () => {
    const w = await backend.create({ jobId: "job-deadman", repoFullName: "octo/demo", maxSeconds: 2 }, never);
    const result = await backend.run(w, await spec("job-deadman", "FAKE_AGENT:sleep"), () => {}, never);
    expect(result).toMatchObject({ outcome: "timed_out", aborted: false });
    expect(result.message).toMatch(/2s limit/);
    expect(await eventually(async () => (await processesUnder(path.join(rootDir, "job-deadman"))).length === 0)).toBe(true);
    await backend.destroy(w);
  });

  it("destroy kills what a dead worker left running (an agent without bwrap)", async () => {
    const w = await backend.create({ jobId: "job-orphan", repoFullName: "octo/demo", maxSeconds: 60 }, never);
    let agentPids: number[] = [];
    const result = await backend.run(
      w,
      await spec("job-orphan", "FAKE_AGENT:sleep", { sandbox: { kind: "none" } }),
      (e) => {
        if (e.type !== "log" || e.line !== "fake agent: sleeping") return;
        void (async () => {
          const workerPid = Number((await backend.list()).find((x) => x.id === w.id)?.meta.pid);
          agentPids = (await processesUnder(path.join(rootDir, "job-orphan"))).map((p) => p.pid).filter((p) => p !== workerPid);
          // The worker dies without a chance to clean up; its agent is in a group of its own.
          process.kill(workerPid, "SIGKILL");
        })();
      },
      never,
    );
    expect(result.outcome).toBe("error");
    expect(result.message).toMatch(/without reporting a result/);
    expect(agentPids.length).toBeGreaterThan(0);
    expect(await isAlive(agentPids[0]!)).toBe(true);

    await backend.destroy(w);
    expect(await eventually(async () => !(await Promise.all(agentPids.map(isAlive))).some(Boolean))).toBe(true);
  });
});
