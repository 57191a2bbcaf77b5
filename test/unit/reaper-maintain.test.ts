/**
 * The reaper runs each backend's housekeeping (maintain) once a pass: a warm pool refilled and
 * kept honest, leftover job secrets swept. A dry run leaves it alone, and one backend failing it
 * does not stop the pass.
 */
import { describe, expect, it } from "vitest";
import type { Backend, BackendMaintenance } from "../../src/backends/types.js";
import { Reaper } from "../../src/reaper/reaper.js";
import { JobStore } from "../../src/store/job-store.js";
import { openStore } from "../../src/store/open-store.js";

const silent = { info: () => {}, warn: () => {}, error: () => {} };

function backendWith(name: string, maintain?: () => Promise<BackendMaintenance>): Backend & { calls: number } {
  const b = {
    name,
    calls: 0,
    capacity: async () => ({ max: 1, active: 0 }),
    create: async () => {
      throw new Error("unused");
    },
    run: async () => {
      throw new Error("unused");
    },
    destroy: async () => {},
    list: async () => [],
    ...(maintain
      ? {
          maintain: async () => {
            b.calls += 1;
            return maintain();
          },
        }
      : {}),
  };
  return b;
}

describe("the reaper's housekeeping pass", () => {
  it("runs every backend's maintain once a pass and reports what it did, failures included", async () => {
    const store = new JobStore(await openStore({ dataDir: ":memory:" }));
    const pool = backendWith("gce", async () => ({ actions: [{ kind: "pool-fill", id: "agent-work-pool-abc", reason: "pool has 0 of 1" }] }));
    const broken = backendWith("other", async () => {
      throw new Error("API down");
    });
    const reaper = new Reaper({
      store,
      backends: new Map<string, Backend>([
        ["gce", pool],
        ["other", broken],
        ["local", backendWith("local")],
      ]),
      now: Date.now,
      log: silent as never,
    });

    const dry = await reaper.tick({ dryRun: true });
    expect(pool.calls).toBe(0);
    expect(dry.maintenance).toEqual([]);

    const report = await reaper.tick();
    expect(pool.calls).toBe(1);
    expect(report.maintenance).toEqual([
      { backend: "gce", kind: "pool-fill", id: "agent-work-pool-abc", reason: "pool has 0 of 1" },
      { backend: "other", kind: "maintain", id: "other", reason: "housekeeping pass", error: "API down" },
    ]);
  });
});
