import { afterEach, describe, expect, it, vi } from "vitest";
import { startHarness, type Harness } from "../support/harness.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Polls an async condition (no assertion on time: the generous limit only ends a hung test). */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("the scheduler's passes", () => {
  it("look for commands when a webhook wakes them, not when a finished phase does, and a command is still answered at once", async () => {
    // The timer's passes are ten minutes apart: within this test only webhooks and finished phases wake the scheduler.
    h = await startHarness({ autoSchedule: true, env: { SCHEDULER_INTERVAL_MS: "600000" } });
    const commandLooks = vi.spyOn(h.controller.requests, "claim");
    const jobLooks = vi.spyOn(h.controller.store, "claim");
    const queuedLooks = () => jobLooks.mock.calls.filter(([states]) => states.length === 1 && states[0] === "queued").length;

    expect((await h.deliverLabel({ body: "FAKE_AGENT:edit" })).status).toBe(200);
    await until("the job to succeed", async () => (await h!.controller.store.list())[0]?.state === "succeeded");
    await h.controller.scheduler.drain();
    // Every pass looks for queued jobs; only the label's wake (and the start's first pass, if it
    // was still under way) looked for commands. The passes that intake's and the run's ends woke did not.
    expect(queuedLooks()).toBeGreaterThanOrEqual(3);
    expect(commandLooks.mock.calls.length).toBeLessThanOrEqual(2);
    expect(commandLooks.mock.calls.length).toBeLessThan(queuedLooks());

    // A command's webhook wakes a pass that looks for it: answered without waiting for the timer.
    expect((await h.deliverComment("/agent status")).status).toBe(200);
    const replies = () => h!.github.callsTo("POST", "/issues/:id/comments").map((c) => String(c.body.body));
    await until("the status reply", async () => replies().some((b) => /state: \*\*succeeded\*\*/.test(b)));
  }, 120_000);
});
