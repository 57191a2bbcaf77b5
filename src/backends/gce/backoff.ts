/**
 * Capped exponential backoff with full jitter, and the clock it sleeps on, passed in so tests run
 * with a zero-delay sleep and a fake clock instead of waiting.
 */
import { classifyGceError } from "./classify-gce-error.js";

export interface Backoff {
  initialMs: number;
  maxMs: number;
  multiplier: number;
}

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** In [0, 1): the jitter. */
  random(): number;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
  random: Math.random,
};

/** The delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** attempt);
  // Full jitter: many controllers retrying after one outage do not come back in lockstep.
  return Math.round(ceiling * (0.5 + random() / 2));
}

export const API_BACKOFF: Backoff = { initialMs: 500, maxMs: 15_000, multiplier: 2 };

/**
 * Runs `call`, retrying it while it fails with a transient error (see classify-gce-error.ts), at
 * most `attempts` times in all. Any other error is thrown at once, unchanged.
 */
export async function retryTransient<T>(
  call: () => Promise<T>,
  options: { clock: Clock; attempts?: number; backoff?: Backoff; signal?: AbortSignal; onRetry?: (err: unknown, delayMs: number) => void },
): Promise<T> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 0; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await call();
    } catch (err) {
      if (attempt + 1 >= attempts || classifyGceError(err).kind !== "transient") throw err;
      const delay = backoffDelay(attempt, options.backoff ?? API_BACKOFF, options.clock.random);
      options.onRetry?.(err, delay);
      await options.clock.sleep(delay, options.signal);
    }
  }
}
