import pino from "pino";
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { JobStore } from "../../src/store/job-store.js";
import { preferenceOrder, routeJob } from "../../src/pipeline/route-job.js";
import type { Backend } from "../../src/backends/types.js";

function backend(name: string, capacity: () => Promise<{ max: number; active: number }>): Backend {
  return { name, capacity, create: async () => ({ id: name, backend: name, jobId: "", createdAt: 0, meta: {} }), run: async () => ({ outcome: "no_changes", message: "", computeSeconds: 0, aborted: false }), destroy: async () => undefined, list: async () => [] };
}

async function queuedJob(store: JobStore, backendName = "local") {
  const { job } = await store.insertReceived(
    { deliveryId: `d${Math.random()}`, installationId: 1, repoId: 1, owner: "o", repo: "r", number: 1, kind: "issue", trigger: "label", requester: "a", title: "t", body: "b", cloneUrl: "https://x/r.git", defaultBranch: "main", instructions: null },
    { backend: backendName },
  );
  return store.transition(job.id, "received", "queued");
}

const log = pino({ level: "silent" });

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
    const store = new JobStore(await openStore({ dataDir: ":memory:" }));
    const job = await queuedJob(store);
    const backends = new Map([
      ["local", backend("local", async () => ({ max: 2, active: 2 }))],
      ["ssh", backend("ssh", async () => Promise.reject(new Error("connect ECONNREFUSED 10.0.0.5:22")))],
      ["gce", backend("gce", async () => ({ max: 4, active: 1 }))],
    ]);
    const routed = await routeJob({ store, backends, config: { backendOrder: ["local", "ssh", "gce"] } as never, log }, job);
    expect(routed?.route).toEqual({ backend: "gce", skipped: [{ backend: "local", why: "full (2/2)" }, { backend: "ssh", why: "down (connect ECONNREFUSED 10.0.0.5:22)" }] });
    const moved = await store.getOrThrow(job.id);
    expect(moved.backend).toBe("gce");
    expect(moved.options.route).toBe("runs on `gce`: `local` was full (2/2), `ssh` was down (connect ECONNREFUSED 10.0.0.5:22)");
    expect((await store.events(job.id)).map((e) => e.kind)).toContain("routed");
  });

  it("leaves the job where it is when its own backend has room", async () => {
    const store = new JobStore(await openStore({ dataDir: ":memory:" }));
    const job = await queuedJob(store);
    const backends = new Map([["local", backend("local", async () => ({ max: 2, active: 1 }))]]);
    const routed = await routeJob({ store, backends, config: { backendOrder: ["local"] } as never, log }, job);
    expect(routed?.route).toEqual({ backend: "local", skipped: [] });
    expect((await store.getOrThrow(job.id)).options.route).toBeUndefined();
  });

  it("keeps the job waiting when every backend it may use is full or down", async () => {
    const store = new JobStore(await openStore({ dataDir: ":memory:" }));
    const job = await queuedJob(store);
    const backends = new Map([
      ["local", backend("local", async () => ({ max: 1, active: 1 }))],
      ["ssh", backend("ssh", async () => ({ max: 0, active: 0 }))],
    ]);
    expect(await routeJob({ store, backends, config: { backendOrder: ["ssh"] } as never, log }, job)).toBeUndefined();
    expect((await store.getOrThrow(job.id)).backend).toBe("local");
  });
});
