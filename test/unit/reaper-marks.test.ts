import { describe, expect, it } from "vitest";
import type { Backend, Worker } from "../../src/backends/types.js";
import { reap, type ReapDeps } from "../../src/reaper/reap.js";
import { JobStore } from "../../src/store/job-store.js";
import { ReaperMarkStore, reaperMarkKey } from "../../src/store/reaper-marks.js";
import { STORE_KINDS, useTestStores } from "../support/postgres.js";

const worker: Worker = { id: "w-1", backend: "fake", jobId: "jgone0000000", createdAt: 1, meta: { folder: "/tmp/x" } };

/** A backend whose listing waits for `release()`, so a test can hold a pass in the middle. */
function slowBackend() {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  let lists = 0;
  const backend: Backend = {
    name: "fake",
    capacity: async () => ({ max: 1, active: 0 }),
    create: async () => worker,
    run: async () => {
      throw new Error("not used");
    },
    destroy: async () => undefined,
    list: async () => {
      lists += 1;
      await gate;
      return [worker];
    },
  };
  return { backend, release: () => release(), lists: () => lists };
}

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined } as unknown as ReapDeps["log"];

describe.each(STORE_KINDS)("reaper marks on %s", (kind) => {
  const stores = useTestStores(kind);

  it("keeps the first sighting of a mark, and survives a restart between two passes", async () => {
    const marks = new ReaperMarkStore(await stores.fresh());
    await marks.mark({ kind: "orphan", backend: "fake", workerId: "w-1", jobId: "j1", markedAt: 1_790_000_000_000, worker });
    await marks.mark({ kind: "orphan", backend: "fake", workerId: "w-1", jobId: "j1", markedAt: 1_790_000_060_000, worker });
    await marks.mark({ kind: "vanished", backend: "fake", workerId: "w-2", jobId: "j2", markedAt: 1_790_000_000_500, worker: null });
    const again = new ReaperMarkStore(await stores.another());
    expect(await again.list()).toEqual([
      { key: reaperMarkKey("orphan", "fake", "w-1"), kind: "orphan", backend: "fake", workerId: "w-1", jobId: "j1", markedAt: 1_790_000_000_000, worker },
      {
        key: reaperMarkKey("vanished", "fake", "j2"),
        kind: "vanished",
        backend: "fake",
        workerId: "w-2",
        jobId: "j2",
        markedAt: 1_790_000_000_500,
        worker: null,
      },
    ]);
    await again.unmark(reaperMarkKey("orphan", "fake", "w-1"));
    expect((await marks.list()).map((m) => m.kind)).toEqual(["vanished"]);
  });

  // The embedded store serves one controller, whose Reaper.tick keeps its own passes apart
  // (test/unit/reaper.test.ts); across replicas that takes the database.
  it.runIf(kind === "postgres")("lets one replica's reaper pass run at a time, and the other skip rather than wait", async () => {
    const slow = slowBackend();
    const a = new JobStore(await stores.fresh());
    const b = new JobStore(await stores.another());
    const backends = new Map([["fake", slow.backend]]);
    const first = reap({ store: a, backends, now: () => 1_000, log: quiet });
    while (slow.lists() === 0) await new Promise((r) => setTimeout(r, 5));
    const second = await reap({ store: b, backends, now: () => 1_000, log: quiet });
    expect(second).toMatchObject({ skipped: "another replica's reaper pass is under way", actions: [] });
    expect(slow.lists()).toBe(1);
    // A dry run changes nothing, so it needs no turn.
    const dry = reap({ store: b, backends, now: () => 1_000, log: quiet, dryRun: true });
    slow.release();
    expect((await first).actions.map((x) => x.kind)).toEqual(["mark-orphan"]);
    expect((await dry).skipped).toBeUndefined();
    // Once the first pass is over, the other replica's next pass runs and acts on the mark.
    const third = await reap({ store: b, backends, now: () => 2_000, log: quiet });
    expect(third.skipped).toBeUndefined();
    expect(third.actions.map((x) => x.kind)).toEqual(["destroy-orphan"]);
  });
});
