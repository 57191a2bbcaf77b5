import pino from "pino";
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { JobStore } from "../../src/store/job-store.js";
import { preferenceOrder, routeJob } from "../../src/pipeline/route-job.js";
import { Ledger } from "../../src/cost/ledger.js";
import { bundledPriceTable } from "../../src/cost/price-table.js";
import { priceJob } from "../../src/cost/price-job.js";
import type { Backend } from "../../src/backends/types.js";
import type { ControllerConfig } from "../../src/config/env.js";
import type { RepoConfig } from "../../src/config/repo-config.js";

function backend(name: string, capacity: Backend["capacity"]): Backend {
  return {
    name,
    capacity,
    create: async () => ({ id: name, backend: name, jobId: "", createdAt: 0, meta: {} }),
    run: async () => ({ outcome: "no_changes", message: "", computeSeconds: 0, aborted: false }),
    destroy: async () => undefined,
    list: async () => [],
  };
}

const repoConfig: RepoConfig = {
  agent: "claude-code",
  maxMinutes: 30,
  branchPrefix: "agent/",
  draft: true,
  priority: 0,
  sizes: {},
  budget: {},
  forkPullRequests: "refuse",
};

async function queuedJob(store: JobStore, backendName = "local", options: Record<string, unknown> = {}, number = 1) {
  const { job } = await store.insertReceived(
    {
      deliveryId: `d${Math.random()}`,
      installationId: 1,
      repoId: 1,
      owner: "o",
      repo: "r",
      number,
      kind: "issue",
      trigger: "label",
      requester: "a",
      title: "t",
      body: "b",
      cloneUrl: "https://x/r.git",
      defaultBranch: "main",
      instructions: null,
      options,
    },
    { backend: backendName },
  );
  return store.transition(job.id, "received", "queued", { config: { ...repoConfig, backend: backendName as RepoConfig["backend"] } });
}

const log = pino({ level: "silent" });

async function world(config: Partial<ControllerConfig> = {}) {
  const db = await openStore({ dataDir: ":memory:" });
  const store = new JobStore(db);
  const ledger = new Ledger(db, () => Date.UTC(2026, 4, 1, 12, 30));
  const deps = (backends: Map<string, Backend>) => ({
    store,
    backends,
    ledger,
    priceTable: bundledPriceTable,
    log,
    config: { backendOrder: [], budgets: { jobUsd: 1, repoMonthlyUsd: 100, globalHourlyUsd: 100 }, ...config } as ControllerConfig,
  });
  return { store, ledger, deps };
}

describe("where a job runs", () => {
  it("tries its own backend, then the controller's order; a --backend flag pins it", () => {
    const enabled = ["local", "ssh", "gce"];
    expect(preferenceOrder({ backend: "local", options: {} }, ["local", "ssh", "gce"], enabled)).toEqual(["local", "ssh", "gce"]);
    expect(preferenceOrder({ backend: "ssh", options: {} }, ["local", "ssh", "gce"], enabled)).toEqual(["ssh", "local", "gce"]);
    expect(preferenceOrder({ backend: "local", options: {} }, [], enabled)).toEqual(["local"]);
    expect(preferenceOrder({ backend: "gce", options: { backend: "gce" } }, ["local", "ssh"], enabled)).toEqual(["gce"]);
    expect(preferenceOrder({ backend: "local", options: {} }, ["k8s", "ssh"], enabled)).toEqual(["local", "ssh"]);
  });

  it("skips a full and a down backend for the next one, and says so on the job", async () => {
    const { store, deps } = await world({ backendOrder: ["local", "ssh", "gce"] });
    const job = await queuedJob(store);
    const backends = new Map([
      ["local", backend("local", async () => ({ max: 2, active: 2 }))],
      ["ssh", backend("ssh", async () => Promise.reject(new Error("connect ECONNREFUSED 10.0.0.5:22")))],
      ["gce", backend("gce", async () => ({ max: 4, active: 1 }))],
    ]);
    const routed = await routeJob(deps(backends), job);
    expect("route" in routed && routed.route).toEqual({
      backend: "gce",
      skipped: [
        { backend: "local", why: "full (2/2)" },
        { backend: "ssh", why: "down (connect ECONNREFUSED 10.0.0.5:22)" },
      ],
    });
    const moved = await store.getOrThrow(job.id);
    expect(moved.backend).toBe("gce");
    expect(moved.options.route).toBe("runs on `gce`: `local` was full (2/2), `ssh` was down (connect ECONNREFUSED 10.0.0.5:22)");
    expect((await store.events(job.id)).map((e) => e.kind)).toContain("routed");
  });

  it("leaves the job where it is when its own backend has room", async () => {
    const { store, deps } = await world({ backendOrder: ["local"] });
    const job = await queuedJob(store);
    const backends = new Map([["local", backend("local", async () => ({ max: 2, active: 1 }))]]);
    const routed = await routeJob(deps(backends), job);
    expect("route" in routed && routed.route).toEqual({ backend: "local", skipped: [] });
    expect((await store.getOrThrow(job.id)).options.route).toBeUndefined();
  });

  it("keeps the job waiting when every backend it may use is full or down", async () => {
    const { store, deps } = await world({ backendOrder: ["ssh"] });
    const job = await queuedJob(store);
    const backends = new Map([
      ["local", backend("local", async () => ({ max: 1, active: 1 }))],
      ["ssh", backend("ssh", async () => ({ max: 0, active: 0 }))],
    ]);
    expect(await routeJob(deps(backends), job)).toMatchObject({ waiting: "`local` is full (1/1), `ssh` is down (no host or slot answers)", noteChanged: true });
    expect(await store.getOrThrow(job.id)).toMatchObject({
      backend: "local",
      options: { waiting: "`local` is full (1/1), `ssh` is down (no host or slot answers)" },
    });
    // Looked at again with nothing changed: nothing new to show.
    expect(await routeJob(deps(backends), await store.getOrThrow(job.id))).toMatchObject({ noteChanged: false });
  });

  it("treats a backend at its BACKEND_CAPS jobs at once as full: the job moves along BACKEND_ORDER, or waits and says why", async () => {
    const { store, ledger, deps } = await world({ backendOrder: ["local", "ssh"], backendCaps: { local: { jobs: 1 } } });
    const roomy = () => backend("x", async () => ({ max: 8, active: 0 }));
    const free = priceJob({ backend: "local" }, undefined);
    const holder = await queuedJob(store, "local", {}, 1);
    await ledger.reserve({
      jobId: holder.id,
      repoId: 1,
      repoFullName: "o/r",
      pricing: free,
      ceilingUsd: 0,
      budgets: { jobUsd: 1, repoMonthlyUsd: 1, globalHourlyUsd: 1 },
    });
    const job = await queuedJob(store, "local", {}, 2);
    const moved = await routeJob(
      deps(
        new Map([
          ["local", roomy()],
          ["ssh", roomy()],
        ]),
      ),
      job,
    );
    expect("route" in moved && moved.route).toEqual({ backend: "ssh", skipped: [{ backend: "local", why: "at its cap of 1 job at once (BACKEND_CAPS)" }] });
    const pinned = await queuedJob(store, "local", { backend: "local" }, 3);
    const waits = await routeJob(
      deps(
        new Map([
          ["local", roomy()],
          ["ssh", roomy()],
        ]),
      ),
      pinned,
    );
    expect(waits).toMatchObject({ waiting: "`local` is at its cap of 1 job at once (BACKEND_CAPS)" });
    // The holder is billed: room again, and the reason is cleared as the job goes.
    await ledger.finalize(holder.id);
    const runs = await routeJob(deps(new Map([["local", roomy()]])), await store.getOrThrow(pinned.id));
    expect("route" in runs && runs.job.options.waiting).toBeUndefined();
  });

  it("keeps a job off a backend whose BACKEND_CAPS hour its ceiling would overspend, with the figures", async () => {
    const { store, ledger, deps } = await world({ backendCaps: { local: { usdPerHour: 1.5 } } });
    const free = priceJob({ backend: "local" }, undefined);
    // claude-code may spend the whole $1 job budget on its model: that is its ceiling, even on local.
    const first = await queuedJob(store, "local", {}, 1);
    await ledger.reserve({
      jobId: first.id,
      repoId: 1,
      repoFullName: "o/r",
      pricing: free,
      ceilingUsd: 1,
      budgets: { jobUsd: 1, repoMonthlyUsd: 100, globalHourlyUsd: 100 },
    });
    const job = await queuedJob(store, "local", {}, 2);
    const waits = await routeJob(deps(new Map([["local", backend("local", async () => ({ max: 8, active: 1 }))]])), job);
    expect(waits).toMatchObject({
      waiting: "`local` is at its cap of $1.50 an hour (BACKEND_CAPS: $1.00 spent or reserved this hour + up to $1.00 for this job; it resets at 13:00 UTC)",
    });
  });

  it("asks the ssh backend for room on hosts carrying the job's labels, and says which labels when there is none", async () => {
    const { store, deps } = await world();
    const asked: unknown[] = [];
    const ssh = backend("ssh", async (need) => {
      asked.push(need);
      return { max: 0, active: 0 };
    });
    const job = await queuedJob(store, "ssh", { sshLabels: ["gpu"] });
    expect(await routeJob(deps(new Map([["ssh", ssh]])), job)).toMatchObject({
      waiting: "`ssh` is down (no host or slot answers; the job needs hosts labelled gpu)",
    });
    expect(asked).toEqual([{ hostLabels: ["gpu"] }]);
  });
});
