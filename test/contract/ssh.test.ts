import { randomBytes } from "node:crypto";
import { rm, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IncompleteListError } from "../../src/backends/incomplete-list-error.js";
import { loadBackendModule } from "../../src/backends/registry.js";
import { ssh, type SshBackend, type SshHostOptions } from "../../src/backends/ssh/ssh-backend.js";
import type { RunSpec } from "../../src/backends/types.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { startSshd, type TestSshd } from "../support/sshd.js";
import { backendContract } from "./backend.js";
import { eventually, processesUnder } from "./live-processes.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));
const never = new AbortController().signal;

function hostOf(sshd: TestSshd, over: Partial<SshHostOptions> = {}): SshHostOptions {
  return {
    name: "local-sshd",
    address: sshd.host,
    port: sshd.port,
    user: sshd.username,
    privateKey: sshd.privateKey,
    hostKeySha256: sshd.hostKeySha256,
    slots: 8,
    labels: [],
    workRoot: `agent-work-test-${randomBytes(4).toString("hex")}`,
    ...over,
  };
}

backendContract("ssh", async () => {
  const sshd = await startSshd();
  const host = hostOf(sshd);
  const backend = ssh.create({ hosts: [host], killGraceMs: 1000 });
  const root = path.join(sshd.home, host.workRoot!);
  return {
    backend,
    liveProcesses: async (w) => (await processesUnder(path.join(root, w.jobId))).map((p) => `${p.pid} ${p.cmdline}`),
    cleanup: async () => {
      await backend.close();
      await sshd.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

/** A TCP port that either drops every connection at once (a host that is down) or forwards to sshd. */
async function flakyPort(targetPort: number): Promise<{ port: number; attempts: number; healthy: boolean; dropAll(): void; close(): Promise<void> }> {
  const state = { port: 0, attempts: 0, healthy: false, dropAll: () => {}, close: async () => {} };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    state.attempts += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    if (!state.healthy) {
      socket.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(upstream);
    socket.pipe(upstream).pipe(socket);
    socket.on("error", () => upstream.destroy());
    upstream.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.port = (server.address() as net.AddressInfo).port;
  state.dropAll = () => {
    for (const s of sockets) s.destroy();
  };
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}

describe("the ssh backend, beyond the contract", () => {
  let sshd: TestSshd;
  let git: GitServer;
  const token = `ghs_${randomBytes(18).toString("hex")}`;
  const roots: string[] = [];

  beforeAll(async () => {
    [sshd, git] = await Promise.all([startSshd(), startGitServer({ acceptToken: token })]);
  });
  afterAll(async () => {
    await Promise.all([sshd?.close(), git?.close()]);
    await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
  });

  function backendWith(hosts: SshHostOptions[], over: Partial<Parameters<typeof ssh.create>[0]> = {}): SshBackend {
    for (const h of hosts) roots.push(path.join(sshd.home, h.workRoot!));
    return ssh.create({ hosts, killGraceMs: 1000, ...over });
  }

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
    expect(await loadBackendModule("ssh")).toBe(ssh);
  });

  it("keeps each job in ~/<workRoot>/<jobId>, private to the SSH user, and names the worker after host and job", async () => {
    const host = hostOf(sshd, { name: "box-1" });
    const backend = backendWith([host]);
    try {
      const w = await backend.create({ jobId: "job-layout", repoFullName: "octo/demo", maxSeconds: 60 }, never);
      expect(w).toMatchObject({
        id: "ssh-box-1-job-layout",
        backend: "ssh",
        jobId: "job-layout",
        meta: { host: "box-1", workDir: `${host.workRoot}/job-layout` },
      });
      const st = await stat(path.join(sshd.home, host.workRoot!, "job-layout"));
      expect(st.mode & 0o777).toBe(0o700);
      expect(st.uid).not.toBe(0);
      await backend.destroy(w);
      await expect(stat(path.join(sshd.home, host.workRoot!, "job-layout"))).rejects.toThrow(/ENOENT/);
    } finally {
      await backend.close();
    }
  });

  it("places a job on the emptiest host and refuses one when every slot is taken", async () => {
    const a = hostOf(sshd, { name: "a", slots: 1 });
    const b = hostOf(sshd, { name: "b", slots: 2 });
    const backend = backendWith([a, b]);
    try {
      const jobs = ["fill-1", "fill-2", "fill-3"].map((jobId) => ({ jobId, repoFullName: "octo/demo", maxSeconds: 60 }));
      const workers = await Promise.all(jobs.map((j) => backend.create(j, never)));
      expect(workers.map((w) => w.meta.host).sort()).toEqual(["a", "b", "b"]);
      expect(await backend.capacity()).toEqual({ max: 3, active: 3 });
      await expect(backend.create({ jobId: "one-too-many", repoFullName: "octo/demo", maxSeconds: 60 }, never)).rejects.toThrow(
        /no SSH host has a free slot.*a: 1\/1.*b: 2\/2/,
      );
      // Adopting an existing job needs no free slot.
      expect((await backend.create(jobs[0]!, never)).id).toBe(workers[0]!.id);
      await Promise.all(workers.map((w) => backend.destroy(w)));
    } finally {
      await backend.close();
    }
  });

  it("places a job that asks for host labels only on hosts carrying all of them, and counts only their room", async () => {
    const plain = hostOf(sshd, { name: "plain", slots: 4, labels: [] });
    const gpu = hostOf(sshd, { name: "gpu-1", slots: 1, labels: ["gpu", "big"] });
    const backend = backendWith([plain, gpu]);
    try {
      expect(await backend.capacity({ hostLabels: ["gpu"] })).toEqual({ max: 1, active: 0 });
      expect(await backend.capacity({ hostLabels: ["arm"] })).toEqual({ max: 0, active: 0 });
      // The emptiest host would be `plain`; the labels send the job to `gpu-1`.
      const w = await backend.create({ jobId: "wants-gpu", repoFullName: "octo/demo", maxSeconds: 60, hostLabels: ["gpu", "big"] }, never);
      expect(w.meta.host).toBe("gpu-1");
      expect(await backend.capacity({ hostLabels: ["gpu"] })).toEqual({ max: 1, active: 1 });
      await expect(backend.create({ jobId: "wants-gpu-2", repoFullName: "octo/demo", maxSeconds: 60, hostLabels: ["gpu"] }, never)).rejects.toThrow(
        /no SSH host labelled gpu has a free slot.*gpu-1: 1\/1/,
      );
      await expect(backend.create({ jobId: "wants-arm", repoFullName: "octo/demo", maxSeconds: 60, hostLabels: ["arm"] }, never)).rejects.toThrow(
        /no SSH host is labelled arm .*plain \[\].*gpu-1 \[gpu, big\]/,
      );
      // A job without labels goes anywhere: here the host with room.
      const any = await backend.create({ jobId: "any-host", repoFullName: "octo/demo", maxSeconds: 60 }, never);
      expect(any.meta.host).toBe("plain");
      await Promise.all([w, any].map((x) => backend.destroy(x)));
    } finally {
      await backend.close();
    }
  });

  it("skips a host that refuses connections once its circuit opens, then tries it again with one job after the cool-down", async () => {
    let clock = 1_000_000;
    const flaky = await flakyPort(sshd.port);
    const good = hostOf(sshd, { name: "good", slots: 8 });
    const bad = hostOf(sshd, { name: "flaky", port: flaky.port, slots: 8 });
    const backend = backendWith([good, bad], { failureThreshold: 2, coolDownMs: 60_000, now: () => clock });
    const job = (jobId: string) => ({ jobId, repoFullName: "octo/demo", maxSeconds: 600 });
    try {
      // Two failures in a row open the circuit; the jobs still find a place on the good host.
      const w1 = await backend.create(job("cb-1"), never);
      const w2 = await backend.create(job("cb-2"), never);
      expect([w1.meta.host, w2.meta.host]).toEqual(["good", "good"]);
      expect(flaky.attempts).toBe(2);
      expect(backend.circuits()).toEqual({ good: "closed", flaky: "open" });

      // While open, the host is not even tried.
      await backend.create(job("cb-3"), never);
      expect(flaky.attempts).toBe(2);
      const listed = await backend.list().catch((e: unknown) => e);
      expect(listed).toBeInstanceOf(IncompleteListError);
      expect((listed as IncompleteListError).workers.map((w) => w.jobId).sort()).toEqual(["cb-1", "cb-2", "cb-3"]);
      expect((listed as IncompleteListError).unreachable.join()).toMatch(/flaky: skipped/);

      // After the cool-down exactly one trial goes through, however many jobs arrive at once; it fails and re-opens.
      clock += 60_000;
      expect(backend.circuits().flaky).toBe("half-open");
      await Promise.all(["cb-4", "cb-5", "cb-6"].map((id) => backend.create(job(id), never)));
      expect(flaky.attempts).toBe(3);
      expect(backend.circuits().flaky).toBe("open");

      // The host comes back: after the next cool-down, one job goes there and the circuit closes.
      flaky.healthy = true;
      clock += 60_000;
      const back = await backend.create(job("cb-7"), never);
      expect(back.meta.host).toBe("flaky");
      expect(backend.circuits()).toEqual({ good: "closed", flaky: "closed" });
      const all = await backend.list();
      await Promise.all(all.map((w) => backend.destroy(w)));
    } finally {
      await backend.close();
      await flaky.close();
    }
  });

  it("still destroys a worker on a host whose circuit is open: the breaker keeps new work away, not teardown", async () => {
    const proxy = await flakyPort(sshd.port);
    proxy.healthy = true;
    const backend = backendWith([hostOf(sshd, { name: "h", port: proxy.port })], { failureThreshold: 1 });
    try {
      const w = await backend.create({ jobId: "job-teardown", repoFullName: "octo/demo", maxSeconds: 60 }, never);
      proxy.healthy = false;
      proxy.dropAll();
      await expect(backend.list()).rejects.toBeInstanceOf(IncompleteListError);
      expect(backend.circuits().h).toBe("open");
      await expect(backend.create({ jobId: "job-new", repoFullName: "octo/demo", maxSeconds: 60 }, never)).rejects.toThrow(/h: skipped for now/);
      proxy.healthy = true;
      await backend.destroy(w);
      expect(backend.circuits().h).toBe("closed");
      expect(await backend.list()).toEqual([]);
    } finally {
      await backend.close();
      await proxy.close();
    }
  });

  it("a cancelled run leaves no process of the job on the host, even an agent outside bubblewrap", async () => {
    const host = hostOf(sshd);
    const backend = backendWith([host]);
    const dir = path.join(sshd.home, host.workRoot!, "job-cancel");
    try {
      const w = await backend.create({ jobId: "job-cancel", repoFullName: "octo/demo", maxSeconds: 600 }, never);
      const ac = new AbortController();
      let seen = 0;
      const result = await backend.run(
        w,
        await spec("job-cancel", "FAKE_AGENT:sleep", { sandbox: { kind: "none" } }),
        (e) => {
          if (e.type !== "log" || e.line !== "fake agent: sleeping") return;
          void processesUnder(dir).then((p) => {
            seen = p.length;
            ac.abort();
          });
        },
        ac.signal,
      );
      expect(seen).toBeGreaterThan(1);
      expect(result).toMatchObject({ aborted: true, outcome: "error" });
      expect(await eventually(async () => (await processesUnder(dir)).length === 0)).toBe(true);
      await backend.destroy(w);
    } finally {
      await backend.close();
    }
  });

  it("kills a worker that outlives JobSpec.maxSeconds, counted from create, and reports timed_out", async () => {
    const host = hostOf(sshd);
    const backend = backendWith([host]);
    try {
      const w = await backend.create({ jobId: "job-deadman", repoFullName: "octo/demo", maxSeconds: 2 }, never);
      const result = await backend.run(w, await spec("job-deadman", "FAKE_AGENT:sleep"), () => {}, never);
      expect(result).toMatchObject({ outcome: "timed_out", aborted: false });
      expect(await eventually(async () => (await processesUnder(path.join(sshd.home, host.workRoot!, "job-deadman"))).length === 0)).toBe(true);
      await backend.destroy(w);
    } finally {
      await backend.close();
    }
  });

  it("reports each host's health: reachable, tools found, circuit state", async () => {
    const dead = await flakyPort(sshd.port);
    const backend = backendWith([hostOf(sshd, { name: "up", labels: ["large"] }), hostOf(sshd, { name: "down", port: dead.port })], { failureThreshold: 1 });
    try {
      const health = await backend.checkHealth();
      expect(health.find((h) => h.name === "up")).toMatchObject({ ok: true, circuit: "closed", missing: [], labels: ["large"], active: 0 });
      expect(health.find((h) => h.name === "down")).toMatchObject({ ok: false, circuit: "open", error: expect.stringMatching(/cannot connect/) });
    } finally {
      await backend.close();
      await dead.close();
    }
  });
});
