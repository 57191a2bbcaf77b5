import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startHarness, FAKE_AGENT_CONFIG, type Harness } from "../support/harness.js";
import { startSshd, type TestSshd } from "../support/sshd.js";
import type { Backend, Worker } from "../../src/backends/types.js";
import type { Job } from "../../src/jobs/types.js";

let h: Harness | undefined;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const c of cleanups.splice(0)) await c();
});

/** A stand-in backend with a fixed capacity that records what it ran; its agent changes nothing. */
function stub(name: string, capacity: { max: number; active: number }) {
  const ran: string[] = [];
  const backend: Backend = {
    name,
    capacity: async () => capacity,
    create: async (job): Promise<Worker> => ({ id: `${name}-${job.jobId}`, backend: name, jobId: job.jobId, createdAt: Date.now(), meta: {} }),
    run: async (worker) => {
      ran.push(worker.jobId);
      return { outcome: "no_changes", message: "nothing to do", computeSeconds: 0.01, aborted: false };
    },
    destroy: async () => undefined,
    list: async () => [],
  };
  return { backend, ran };
}

describe("routing between backends", () => {
  it("runs a job on the next backend in BACKEND_ORDER when its own is full, and says where and why", async () => {
    const local = stub("local", { max: 1, active: 1 });
    const ssh = stub("ssh", { max: 4, active: 0 });
    h = await startHarness({
      env: { BACKEND_ORDER: "local,ssh" },
      extraBackends: new Map([
        ["local", local.backend],
        ["ssh", ssh.backend],
      ]),
    });
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job).toMatchObject({ state: "succeeded", backend: "ssh" });
    expect(local.ran).toEqual([]);
    expect(ssh.ran).toEqual([job!.id]);
    const final = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
    expect(final).toContain("This job runs on `ssh`: `local` was full (1/1).");
    expect(final).toContain("backend `ssh`");
  });

  it("keeps a job waiting, not failing, when every backend it may use is full", async () => {
    const local = stub("local", { max: 1, active: 1 });
    h = await startHarness({ extraBackends: new Map([["local", local.backend]]) });
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    await h.settle(3);
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("queued");
    expect(local.ran).toEqual([]);
  });
});

/**
 * A stand-in for the local backend with room for many jobs, whose runs wait for `release()`: a
 * started job keeps its reservation, and so its place under BACKEND_CAPS, until then.
 */
function gated() {
  const ran: string[] = [];
  let running = 0;
  let mostAtOnce = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const backend: Backend = {
    name: "local",
    capacity: async () => ({ max: 8, active: running }),
    create: async (job): Promise<Worker> => ({ id: `local-${job.jobId}`, backend: "local", jobId: job.jobId, createdAt: Date.now(), meta: {} }),
    run: async (worker, _input, _onEvent, signal) => {
      running += 1;
      mostAtOnce = Math.max(mostAtOnce, running);
      ran.push(worker.jobId);
      await Promise.race([gate, new Promise((r) => signal.addEventListener("abort", r))]);
      running -= 1;
      return { outcome: "no_changes", message: "nothing to do", computeSeconds: 0.01, aborted: false };
    },
    destroy: async () => undefined,
    list: async () => [],
  };
  return { backend, ran, mostAtOnce: () => mostAtOnce, release: () => release() };
}

/** Ticks the scheduler (without waiting for held runs) until `done` holds; a waiting job is looked at again after 5 s. */
async function until(harness: Harness, done: (jobs: Job[]) => boolean, ms = 20_000): Promise<Job[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    await harness.controller.scheduler.tick();
    const jobs = await harness.controller.store.list();
    if (done(jobs)) return jobs;
    if (Date.now() > deadline)
      throw new Error(`not reached in ${ms} ms: ${JSON.stringify(jobs.map((j) => ({ n: j.number, state: j.state, backend: j.backend, options: j.options })))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The latest text of one job's status comment. */
function statusOf(harness: Harness, job: Job): string {
  const bodies = [...harness.github.callsTo("POST", "/issues/:id/comments"), ...harness.github.callsTo("PATCH", "/issues/comments/:id")]
    .map((c) => c.body.body as string)
    .filter((b) => b.includes(job.id));
  return bodies.at(-1) ?? "";
}

describe("routing rules and backend caps", () => {
  it("send a labelled job to its rule's backend and hosts, and every other job to the catch-all", async () => {
    // A real sshd with two "hosts" on it: only one carries the label the rule asks for.
    const sshd: TestSshd = await startSshd();
    const dir = mkdtempSync(path.join(tmpdir(), "agent-work-routing-"));
    const roots = ["plain", "gpu"].map((n) => `agent-work-routing-${n}-${randomBytes(4).toString("hex")}`);
    cleanups.push(async () => {
      await sshd.close();
      rmSync(dir, { recursive: true, force: true });
      await Promise.all(roots.map((r) => rm(path.join(sshd.home, r), { recursive: true, force: true })));
    });
    const host = (name: string, labels: string[], workRoot: string) => ({
      name,
      address: sshd.host,
      port: sshd.port,
      user: sshd.username,
      privateKey: sshd.privateKey,
      hostKeySha256: sshd.hostKeySha256,
      slots: 4,
      labels,
      workRoot,
      nodePath: process.execPath,
    });
    const hostsFile = path.join(dir, "hosts.json");
    writeFileSync(hostsFile, JSON.stringify({ hosts: [host("plain-1", [], roots[0]!), host("gpu-1", ["gpu"], roots[1]!)] }));
    h = await startHarness({
      env: { SSH_HOSTS_FILE: hostsFile, ROUTING_RULES: "[{label: needs-gpu, backend: ssh, ssh_labels: [gpu]}, {backend: local}]" },
    });
    await h.deliverLabel({ number: 1, body: "FAKE_AGENT:none", labels: ["needs-gpu"] });
    await h.deliverLabel({ number: 2, body: "FAKE_AGENT:none", labels: ["bug"] });
    await h.settle(60);
    const jobs = await h.controller.store.list();
    const gpuJob = jobs.find((j) => j.number === 1)!;
    const other = jobs.find((j) => j.number === 2)!;
    expect(gpuJob, gpuJob.message ?? "").toMatchObject({
      state: "succeeded",
      backend: "ssh",
      options: { labels: ["needs-gpu", "agent-work"], sshLabels: ["gpu"] },
    });
    // The emptiest host would have done as well; the rule's labels put it on gpu-1.
    expect(gpuJob.worker?.meta.host).toBe("gpu-1");
    expect(statusOf(h, gpuJob)).toContain("This job runs on `ssh`, picked by routing rule 1 (label `needs-gpu`).");
    expect(other, other.message ?? "").toMatchObject({ state: "succeeded", backend: "local" });
    expect(statusOf(h, other)).toContain("picked by routing rule 2 (every job)");
  });

  it("hold a backend to its cap of jobs at once: the second job waits, says why, and runs when the first is done", async () => {
    const local = gated();
    h = await startHarness({ env: { BACKEND_CAPS: "local=1", MAX_CONCURRENT_JOBS: "4" }, extraBackends: new Map([["local", local.backend]]) });
    await h.deliverLabel({ number: 1, body: "FAKE_AGENT:none" });
    await h.deliverLabel({ number: 2, body: "FAKE_AGENT:none" });
    const jobs = await until(
      h,
      (js) => js.length === 2 && js.some((j) => j.state === "running") && js.some((j) => j.state === "queued" && j.options.waiting !== undefined),
    );
    const waiting = jobs.find((j) => j.state === "queued")!;
    expect(waiting.options.waiting).toBe("`local` is at its cap of 1 job at once (BACKEND_CAPS)");
    await until(h, () => statusOf(h!, waiting).includes("This job waits: `local` is at its cap of 1 job at once (BACKEND_CAPS)."));
    expect(local.ran).toHaveLength(1);
    local.release();
    const done = await until(h, (js) => js.every((j) => j.state === "succeeded"));
    expect(local.ran).toHaveLength(2);
    expect(local.mostAtOnce()).toBe(1);
    // Once it ran, the comment no longer says it waits.
    expect(
      statusOf(
        h,
        done.find((j) => j.id === waiting.id)!,
      ),
    ).not.toContain("This job waits");
  });

  it("hold a backend to its dollars an hour: a job whose ceiling would overspend it waits until spend is billed", async () => {
    // claude-code's ceiling on local is its model allowance: the whole $1.00 job budget.
    const local = gated();
    h = await startHarness({
      repoConfigYaml: "agent: claude-code\n",
      env: { BACKEND_CAPS: "local=:1.50", BUDGET_JOB_USD: "1.00", MAX_CONCURRENT_JOBS: "4" },
      extraBackends: new Map([["local", local.backend]]),
    });
    await h.deliverLabel({ number: 1, body: "first" });
    await until(h, (js) => js.some((j) => j.state === "running"));
    await h.deliverLabel({ number: 2, body: "second" });
    const jobs = await until(h, (js) => js.some((j) => j.number === 2 && j.state === "queued" && j.options.waiting !== undefined));
    const second = jobs.find((j) => j.number === 2)!;
    expect(second.options.waiting).toMatch(
      /^`local` is at its cap of \$1\.50 an hour \(BACKEND_CAPS: \$1\.00 spent or reserved this hour \+ up to \$1\.00 for this job; it resets at \d\d:00 UTC\)$/,
    );
    await until(h, () => statusOf(h!, second).includes("This job waits: `local` is at its cap of $1.50 an hour"));
    expect(local.ran).toHaveLength(1);
    // The first job is billed at what it spent (no model use reported: $0), which frees the hour.
    local.release();
    await until(h, (js) => js.every((j) => j.state === "succeeded"));
    expect(local.ran).toHaveLength(2);
    expect((await h.controller.store.getOrThrow(second.id)).state).toBe("succeeded");
  });
});
