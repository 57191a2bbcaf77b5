import { describe, expect, it, vi } from "vitest";
import { WebhookPriority } from "../../src/ingress/webhook-priority.js";
import { WebhookActivity } from "../../src/ingress/webhook-activity.js";
import { concurrencyLimit } from "../../src/github/request-limiters.js";

/** A hand-moved clock: the priority reads time only through it. */
function clock() {
  let t = 1_000;
  return { now: () => t, move: (ms: number) => (t += ms) };
}
const turnOfLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("the webhook path goes first (src/ingress/webhook-priority.ts)", () => {
  it("lets job work go at once, without a promise, when no delivery came in", () => {
    const priority = new WebhookPriority({ now: clock().now });
    expect(priority.turn()).toBeUndefined();
    expect(priority.cap(40)).toBe(40);
  });

  it("holds job work while a delivery is read and answered, and lets it go once the path is quiet", async () => {
    const c = clock();
    const priority = new WebhookPriority({ now: c.now, quietMs: 5 });
    priority.begin();
    const order: string[] = [];
    void priority.turn()!.then(() => order.push("first"));
    void priority.turn()!.then(() => order.push("second"));
    await turnOfLoop();
    expect(order).toEqual([]);
    expect(priority.cap(40)).toBe(4);
    priority.end();
    // Just answered: still busy for quietMs.
    await turnOfLoop();
    expect(order).toEqual([]);
    c.move(5);
    // The timer armed at end() fires after quietMs of real time; the clock says it is quiet now,
    // and the pieces go one a turn of the event loop, in order.
    await vi.waitFor(() => expect(order).toEqual(["first", "second"]), { timeout: 5_000 });
    expect(priority.pending()).toBe(0);
  });

  it("under a flood that never stops, the oldest piece still goes after maxWaitMs, then one every quietMs", async () => {
    const c = clock();
    const priority = new WebhookPriority({ now: c.now, quietMs: 5, maxWaitMs: 50 });
    priority.begin(); // a delivery that never ends: the path is never quiet
    let done = 0;
    for (let i = 0; i < 3; i++) void priority.turn()!.then(() => done++);
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(0);
    c.move(50);
    await vi.waitFor(() => expect(done).toBe(1), { timeout: 5_000 });
    // Not the next one until quietMs has passed on the clock.
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(1);
    c.move(5);
    await vi.waitFor(() => expect(done).toBe(2), { timeout: 5_000 });
    priority.release();
    await turnOfLoop();
    expect(done).toBe(3);
  });

  it("a refused (unsigned) request opens no busy window after its answer: a stranger cannot hold jobs back", () => {
    const c = clock();
    const priority = new WebhookPriority({ now: c.now, quietMs: 5, recentMs: 100 });
    priority.begin();
    expect(priority.turn()).toBeInstanceOf(Promise);
    priority.release();
    priority.end(false);
    expect(priority.turn()).toBeUndefined();
    expect(priority.cap(40)).toBe(40);
    // A signed one does.
    priority.begin();
    priority.end(true);
    expect(priority.cap(40)).toBe(4);
  });

  it("the cap of calls in flight drops while deliveries arrive and rises again after recentMs", () => {
    const c = clock();
    const priority = new WebhookPriority({ now: c.now, recentMs: 100, busyCap: 4 });
    priority.begin();
    priority.end();
    expect(priority.cap(40)).toBe(4);
    expect(priority.cap(2)).toBe(2);
    c.move(100);
    expect(priority.cap(40)).toBe(40);
  });

  it("a concurrency limit with the gate runs no more calls than the cap, and more again once it rises", async () => {
    let cap = 2;
    const limit = concurrencyLimit(40, { turn: () => undefined, cap: (max) => Math.min(max, cap) }).key();
    let running = 0;
    let most = 0;
    const gates: (() => void)[] = [];
    const call = () =>
      limit.schedule({}, async () => {
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
      });
    const calls = Array.from({ length: 6 }, call);
    await turnOfLoop();
    expect(running).toBe(2);
    cap = 40;
    gates.shift()!();
    await turnOfLoop();
    await turnOfLoop();
    // The one that ended lets every waiting call start, now that the cap allows it.
    expect(running).toBe(5);
    while (gates.length > 0) gates.shift()!();
    await Promise.all(calls.slice(0, 5));
    while (gates.length > 0) gates.shift()!();
    await Promise.all(calls);
    expect(most).toBe(5);
  });

  it("reads the webhook thread's deliveries from shared memory, and lets job work go once a dead thread's deliveries are cleared", async () => {
    const c = clock();
    const activity = new WebhookActivity(undefined, c.now);
    const priority = new WebhookPriority({ now: c.now, quietMs: 5, maxWaitMs: 60_000, activity });
    // The thread's own copy over the same memory, as ingress-thread.ts builds it.
    const thread = new WebhookActivity(activity.buffer, c.now);
    thread.begin();
    let went = false;
    void priority.turn()!.then(() => (went = true));
    c.move(100);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(went).toBe(false);
    // The thread died with the delivery in hand: start-ingress-thread.ts clears the count.
    activity.clearInFlight();
    await vi.waitFor(() => expect(went).toBe(true));
    expect(priority.turn()).toBeUndefined();
  });
});
