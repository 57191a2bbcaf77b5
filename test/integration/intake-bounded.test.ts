import { afterEach, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../support/harness.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("a burst of labels", () => {
  it("is taken in at most 20 at a time: a second pass while those are under way claims nothing more, and the rest follow", async () => {
    // GitHub answers slowly enough that the first pass's intakes are still asking it when the
    // second pass runs (tick() returns once what it claimed has started).
    h = await startHarness({ latencyMs: 300, env: { MAX_CONCURRENT_JOBS: "1" } });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => h!.deliverLabel({ number: 700 + i })));
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));

    const waiting = async () => (await h!.controller.store.list({ limit: 100 })).filter((j) => j.state === "received" && !j.leaseOwner).length;
    await h.controller.scheduler.tick();
    await h.controller.scheduler.tick();
    expect(await waiting()).toBe(10);

    // Once those are in, the next pass takes the other ten.
    await h.controller.scheduler.drain();
    expect(h.github.callsTo("POST", "/reactions")).toHaveLength(20);
    await h.controller.scheduler.tick();
    expect(await waiting()).toBe(0);
  }, 120_000);
});
