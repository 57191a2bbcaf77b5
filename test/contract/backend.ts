/**
 * The promises every backend keeps, run against each one (local, ssh, gce, k8s, cloudrun) by its own
 * `*.test.ts`: the same cases, a different `make()`. The run cases use the real worker script, a
 * real git smart-HTTP server on 127.0.0.1 and the fake agent, so a backend passes only if a job
 * really clones, runs, pushes and can be stopped on it.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, JobSpec, RunSpec, Worker } from "../../src/backends/types.js";
import type { ProgressEvent } from "../../src/worker/protocol.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { eventually } from "./live-processes.js";

export interface BackendHarness {
  backend: Backend;
  cleanup(): Promise<void>;
  /**
   * The processes this worker has running wherever the backend runs it (any description: pid and
   * command line); empty when nothing is left. Each backend knows where to look.
   */
  liveProcesses(worker: Worker): Promise<string[]>;
  /** The sandbox the run cases use; the default is bwrap with the fixtures folder mounted read-only. */
  sandbox?: RunSpec["sandbox"];
}

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));

function canaryToken(): string {
  return `ghs_${randomBytes(18).toString("hex")}`;
}

export function backendContract(name: string, make: () => Promise<BackendHarness>): void {
  describe(`the ${name} backend`, () => {
    let h: BackendHarness;
    let git: GitServer;
    let token: string;
    const never = new AbortController().signal;

    beforeAll(async () => {
      token = canaryToken();
      [h, git] = await Promise.all([make(), startGitServer({ acceptToken: token })]);
    });
    afterAll(async () => {
      await Promise.all([h?.cleanup(), git?.close()]);
    });

    function job(over: Partial<JobSpec> = {}): JobSpec {
      return { jobId: `contract-${randomBytes(4).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600, ...over };
    }

    async function runSpec(jobId: string, prompt: string): Promise<{ spec: RunSpec; owner: string; repo: string }> {
      const repo = `demo-${jobId}`;
      const { cloneUrl } = await git.createRepo("octo", repo, { "README.md": "# demo\n" });
      const spec: RunSpec = {
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
        sandbox: h.sandbox ?? { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: false },
      };
      return { spec, owner: "octo", repo };
    }

    /** Calls `then` once the fake agent says it is sleeping, i.e. every process of the run is up. */
    function whenSleeping(events: ProgressEvent[], then: () => void) {
      return (e: ProgressEvent) => {
        events.push(e);
        if (e.type === "log" && e.line === "fake agent: sleeping") then();
      };
    }

    it("create is idempotent on the job id: a second call adopts the first worker", async () => {
      const spec = job();
      const first = await h.backend.create(spec, never);
      const second = await h.backend.create(spec, never);
      expect(second.id).toBe(first.id);
      expect(second.createdAt).toBe(first.createdAt);
      expect(second.backend).toBe(h.backend.name);
      expect((await h.backend.list()).filter((w) => w.jobId === spec.jobId)).toHaveLength(1);
      await h.backend.destroy(first);
    });

    it("list finds what create made, and capacity counts it", async () => {
      const before = await h.backend.capacity();
      const [a, b] = await Promise.all([h.backend.create(job(), never), h.backend.create(job(), never)]);
      const listed = await h.backend.list();
      expect(listed.map((w) => w.id)).toEqual(expect.arrayContaining([a.id, b.id]));
      expect(listed.find((w) => w.id === a.id)).toMatchObject({ jobId: a.jobId, backend: h.backend.name, createdAt: a.createdAt });
      expect((await h.backend.capacity()).active).toBe(before.active + 2);
      await Promise.all([h.backend.destroy(a), h.backend.destroy(b)]);
      expect((await h.backend.capacity()).active).toBe(before.active);
    });

    it("destroy removes a worker, and destroying it again succeeds", async () => {
      const w = await h.backend.create(job(), never);
      await h.backend.destroy(w);
      expect((await h.backend.list()).map((x) => x.id)).not.toContain(w.id);
      await expect(h.backend.destroy(w)).resolves.toBeUndefined();
    });

    it("destroying a worker that was never created succeeds", async () => {
      const ghost: Worker = { id: `${h.backend.name}-never-made`, backend: h.backend.name, jobId: "never-made", createdAt: 0, meta: {} };
      await expect(h.backend.destroy(ghost)).resolves.toBeUndefined();
    });

    it("create refuses to start when its signal is already aborted", async () => {
      const spec = job();
      const ac = new AbortController();
      ac.abort();
      await expect(h.backend.create(spec, ac.signal)).rejects.toThrow();
      expect((await h.backend.list()).map((w) => w.jobId)).not.toContain(spec.jobId);
    });

    it("run reports the steps in order and exactly one result, and the branch is pushed", async () => {
      const w = await h.backend.create(job(), never);
      const { spec, owner, repo } = await runSpec(w.jobId, "Fix it. FAKE_AGENT:edit");
      const events: ProgressEvent[] = [];
      const result = await h.backend.run(w, spec, (e) => events.push(e), never);

      expect(result).toMatchObject({ outcome: "pushed", branch: spec.branch, aborted: false, filesChanged: 1 });
      expect(result.computeSeconds).toBeGreaterThan(0);
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
      const results = events.filter((e) => e.type === "result");
      expect(results).toHaveLength(1);
      expect(results[0]).toMatchObject({ result: { outcome: "pushed", headSha: result.headSha } });
      expect(await git.branchSha(owner, repo, spec.branch)).toBe(result.headSha);
      expect(events.some((e) => JSON.stringify(e).includes(token))).toBe(false);
      await h.backend.destroy(w);
    });

    it("an aborted run stops every process it started and says it was aborted", async () => {
      const w = await h.backend.create(job(), never);
      const { spec } = await runSpec(w.jobId, "FAKE_AGENT:sleep");
      const ac = new AbortController();
      const events: ProgressEvent[] = [];
      let running: string[] = [];
      const result = await h.backend.run(
        w,
        spec,
        whenSleeping(events, () => {
          void h.liveProcesses(w).then((p) => {
            running = p;
            ac.abort();
          });
        }),
        ac.signal,
      );

      expect(running.length, "processes were seen while the agent ran").toBeGreaterThan(0);
      expect(result.aborted).toBe(true);
      expect(result.outcome).toBe("error");
      expect(await eventually(async () => (await h.liveProcesses(w)).length === 0)).toBe(true);
      await h.backend.destroy(w);
    });

    it("destroy stops a worker that is still running", async () => {
      const w = await h.backend.create(job(), never);
      const { spec } = await runSpec(w.jobId, "FAKE_AGENT:sleep");
      let destroyed: Promise<void> | undefined;
      const result = await h.backend.run(
        w,
        spec,
        whenSleeping([], () => {
          destroyed = h.backend.destroy(w);
        }),
        never,
      );
      await destroyed;

      expect(result.outcome).not.toBe("pushed");
      expect(await eventually(async () => (await h.liveProcesses(w)).length === 0)).toBe(true);
      expect((await h.backend.list()).map((x) => x.id)).not.toContain(w.id);
    });
  });
}
