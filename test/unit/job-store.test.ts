import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { JobStore, StaleStateError, isUniqueViolation } from "../../src/store/job-store.js";
import type { NewJob } from "../../src/jobs/types.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function newJob(over: Partial<NewJob> = {}): NewJob {
  return {
    deliveryId: `d-${Math.random()}`,
    installationId: 1,
    repoId: 42,
    owner: "octo",
    repo: "demo",
    number: 7,
    kind: "issue",
    trigger: "label",
    requester: "alice",
    title: "Fix it",
    body: "Please",
    cloneUrl: "https://github.com/octo/demo.git",
    defaultBranch: "main",
    instructions: null,
    ...over,
  };
}

async function memoryStore(now?: () => number) {
  return new JobStore(await openStore({ dataDir: ":memory:" }), now);
}

describe("job store", () => {
  it("records the same delivery once, however often it arrives", async () => {
    const store = await memoryStore();
    const input = newJob({ deliveryId: "same" });
    const results = await Promise.all(Array.from({ length: 20 }, () => store.insertReceived(input, { backend: "local" })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
    expect((await store.list()).length).toBe(1);
  });

  it("admits at most one active job per issue", async () => {
    const store = await memoryStore();
    const a = (await store.insertReceived(newJob(), { backend: "local" })).job;
    const b = (await store.insertReceived(newJob(), { backend: "local" })).job;
    await store.transition(a.id, "received", "queued");
    const err = await store.transition(b.id, "received", "queued").catch((e) => e);
    expect(isUniqueViolation(err)).toBe(true);
    expect((await store.get(b.id))?.state).toBe("received");
    // Once the first job ends, the issue takes a new one.
    await store.transition(a.id, "queued", "cancelled");
    await store.transition(b.id, "received", "queued");
    expect((await store.activeFor(42, 7))?.id).toBe(b.id);
  });

  it("refuses a transition the state machine does not allow, and one that lost a race", async () => {
    const store = await memoryStore();
    const a = (await store.insertReceived(newJob(), { backend: "local" })).job;
    await expect(store.transition(a.id, "received", "running")).rejects.toThrow(/cannot go from received to running/);
    await store.transition(a.id, "received", "queued");
    await expect(store.transition(a.id, "received", "queued")).rejects.toBeInstanceOf(StaleStateError);
  });

  it("claims by priority then age, and never hands one job to two owners while the lease holds", async () => {
    let now = 1_000;
    const store = await memoryStore(() => now);
    const low = (await store.insertReceived(newJob({ number: 1 }), { backend: "local" })).job;
    now += 1;
    const high = (await store.insertReceived(newJob({ number: 2 }), { backend: "local" })).job;
    await store.transition(low.id, "received", "queued");
    await store.transition(high.id, "received", "queued", { priority: 5 });
    const first = await store.claim(["queued"], "a", 10_000, 1);
    expect(first.map((j) => j.id)).toEqual([high.id]);
    const second = await store.claim(["queued"], "b", 10_000, 5);
    expect(second.map((j) => j.id)).toEqual([low.id]);
    expect(await store.claim(["queued"], "c", 10_000, 5)).toEqual([]);
    now += 20_000; // both leases expired: their owners are presumed dead
    expect((await store.claim(["queued"], "c", 10_000, 5)).length).toBe(2);
  });

  it("keeps jobs and their events across a restart of the process", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "aw-store-"));
    dirs.push(dir);
    const s1 = new JobStore(await openStore({ dataDir: dir }));
    const { job } = await s1.insertReceived(newJob(), { backend: "local" });
    await s1.transition(job.id, "received", "queued");
    await s1.db.destroy();
    const s2 = new JobStore(await openStore({ dataDir: dir }));
    expect((await s2.get(job.id))?.state).toBe("queued");
    expect((await s2.events(job.id)).map((e) => e.kind)).toEqual(["received", "state"]);
    expect(await s2.countByState()).toEqual({ queued: 1 });
    await s2.db.destroy();
  });
});
