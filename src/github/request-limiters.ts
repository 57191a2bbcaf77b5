/**
 * The limiters @octokit/plugin-throttling schedules every GitHub call through, in place of its
 * Bottleneck groups. The plugin only ever calls `group.key(id).schedule(options, fn, ...args)`;
 * Bottleneck does that with several promises, events and timers per call, which under a burst was
 * ~9% of the controller's CPU. These do the two things we ask of it — a cap on calls in flight and
 * a per-minute budget — with a counter and a queue. `weight: 0` (the plugin's retries) passes at
 * once, as in Bottleneck.
 */
export interface LimiterGroup {
  key(id?: string): Limiter;
}

export interface Limiter {
  schedule<T, A extends unknown[]>(options: { weight?: number; priority?: number }, fn: (...args: A) => T | Promise<T>, ...args: A): Promise<T>;
}

/** One limiter for every key: the controller's clients share one budget, as Bottleneck's groups did with one key. */
const group = (limiter: Limiter): LimiterGroup => ({ key: () => limiter });

/** What the webhook path's priority (src/ingress/webhook-priority.ts) asks of a concurrency limit. */
export interface CallGate {
  /** Asked before a call starts; a promise makes it wait. */
  turn(): Promise<void> | undefined;
  /** How many calls may run at once now, given the usual `max`. */
  cap(max: number): number;
}

/**
 * At most `max` calls of `fn` running at once; the rest wait in order. A `gate`, when given, is
 * asked before a call starts and may make it wait or lower the cap for a while.
 */
export function concurrencyLimit(max: number, gate?: CallGate): LimiterGroup {
  let running = 0;
  const waiting: (() => void)[] = [];
  const cap = () => (gate ? gate.cap(max) : max);
  const release = () => {
    running--;
    // Several when the cap has risen again since these calls began to wait.
    while (waiting.length > 0 && running < cap()) {
      running++;
      waiting.shift()!();
    }
  };
  return group({
    async schedule(options, fn, ...args) {
      if (options.weight === 0) return fn(...args);
      const waitForTurn = gate?.turn();
      if (waitForTurn) await waitForTurn;
      if (running < cap() && waiting.length === 0) running++;
      else await new Promise<void>((resolve) => waiting.push(resolve));
      try {
        return await fn(...args);
      } finally {
        release();
      }
    },
  });
}

/**
 * At most `perMinute` starts in each minute (the budget refills whole every 60 s, as Bottleneck's
 * reservoir did); past it, calls wait for the next refill, in order. The refill timer runs only
 * while calls wait, so an idle controller keeps no timer alive.
 */
export function perMinuteBudget(perMinute: number, now: () => number = Date.now): LimiterGroup {
  let left = perMinute;
  let windowStart = now();
  const waiting: (() => void)[] = [];
  let timer: NodeJS.Timeout | undefined;
  const roll = () => {
    const t = now();
    if (t - windowStart < 60_000) return;
    windowStart = t - ((t - windowStart) % 60_000);
    left = perMinute;
  };
  const arm = () => {
    if (timer) return;
    timer = setTimeout(release, Math.max(0, windowStart + 60_000 - now()));
    timer.unref?.();
  };
  const release = () => {
    timer = undefined;
    roll();
    while (left > 0 && waiting.length > 0) {
      left--;
      waiting.shift()!();
    }
    if (waiting.length > 0) arm();
  };
  return group({
    async schedule(options, fn, ...args) {
      if (options.weight !== 0) {
        roll();
        if (left > 0 && waiting.length === 0) left--;
        else
          await new Promise<void>((resolve) => {
            waiting.push(resolve);
            arm();
          });
      }
      return fn(...args);
    },
  });
}

/** What the plugin's "failed" handler is given and answers: retry after that many ms, or not at all. */
export type FailedHandler = (error: unknown, info: { args: unknown[]; retryCount: number }) => Promise<number | void | undefined> | number | void | undefined;

/** The plugin's `retryLimiter`: it registers its "failed" handler and schedules every call through it. */
export interface RetryLimiter {
  on(event: string, handler: FailedHandler): void;
  schedule<T, A extends unknown[]>(fn: (...args: A) => T | Promise<T>, ...args: A): Promise<T>;
}

/**
 * In place of the Bottleneck the plugin makes for every Octokit to wrap each call (it limits
 * nothing; it is how the plugin retries): runs the call, and when it fails asks the plugin's
 * "failed" handler, which answers with a wait in ms when the failure was a rate limit it wants
 * retried (our onRateLimit/onSecondaryRateLimit decide), and nothing otherwise. One per Octokit,
 * as the plugin's own is: the handler it registers is bound to that client.
 */
export function retryOnRateLimit(sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms))): RetryLimiter {
  const handlers: FailedHandler[] = [];
  return {
    on(event, handler) {
      if (event === "failed") handlers.push(handler);
    },
    async schedule(fn, ...args) {
      for (let retryCount = 0; ; retryCount++) {
        try {
          return await fn(...args);
        } catch (error) {
          let wait: unknown;
          for (const handler of handlers) {
            wait = await handler(error, { args, retryCount });
            if (typeof wait === "number") break;
          }
          if (typeof wait !== "number") throw error;
          await sleep(wait);
        }
      }
    },
  };
}
