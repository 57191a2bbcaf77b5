import type { Clock } from "../../src/backends/gce/backoff.js";

/**
 * A clock whose sleeps return at once and move its time forward instead: code that backs off for
 * minutes runs in milliseconds, and deadlines still expire in the right order.
 */
export function virtualClock(start = Date.now()): Clock & { slept: number[]; advance(ms: number): void } {
  let now = start;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    advance: (ms) => void (now += ms),
    random: () => 0.5,
    async sleep(ms, signal) {
      signal?.throwIfAborted();
      slept.push(ms);
      now += ms;
      // Let I/O and other tasks run, as a real sleep would.
      await new Promise((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
    },
  };
}
