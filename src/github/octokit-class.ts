import { ProbotOctokit } from "probot";
import type { Logger } from "pino";
import { countApiCalls, type ApiCallObserver } from "./count-api-calls.js";
import type { FetchLike } from "./node-http-fetch.js";
import { concurrencyLimit, perMinuteBudget, retryOnRateLimit, type CallGate } from "./request-limiters.js";
import { retryFailedCalls } from "./retry-failed-calls.js";
import { sharedAppJwt } from "./cached-app-jwt.js";

/**
 * GitHub asks for at most ~80 content-creating requests a minute (secondary rate limits). The
 * throttling plugin's default instead spaces every write 1 s and every comment 3 s apart, which
 * would make the first answer to a burst of 20 labels arrive a minute late. These limiters allow
 * bursts and keep the per-minute budget; one set per controller, shared by all its Octokits.
 * They replace the plugin's Bottleneck groups and its per-client Bottleneck retry wrapper (see
 * request-limiters.ts for why). The plugin
 * schedules a no-op through `write` and `notifications` before the call itself, so those two gate
 * when a write starts, not how many run; `global` and `auth` wrap the call.
 */
function createLimiters(gate?: CallGate) {
  return {
    // GitHub allows up to 100 concurrent requests; the plugin's default of 10 halves throughput
    // when a burst of deliveries is taken in at once. A call starts once incoming deliveries leave it room.
    global: concurrencyLimit(40, gate),
    write: concurrencyLimit(10),
    notifications: perMinuteBudget(80),
    // Token requests (a worker token per job): the plugin's default of one at a time made a burst's
    // jobs start no faster than one per GitHub round trip.
    auth: concurrencyLimit(4),
  };
}

export interface OctokitClassOptions {
  log: Logger;
  onApiCall: ApiCallObserver;
  /** How requests reach GitHub (createNodeHttpFetch); Node's built-in fetch when omitted. */
  fetch?: FetchLike;
  /**
   * Merged last (tests turn retries off). `throttle` is merged into the throttle options above
   * rather than replacing them, so a benchmark can lift one limiter and keep the others.
   */
  overrides?: Record<string, unknown>;
  /** Asked before each call starts: while webhook deliveries arrive, calls wait and fewer run (src/ingress/webhook-priority.ts). */
  gate?: CallGate;
}

/**
 * An app's auth options (app id and private key) with a JWT signed once and reused
 * (cached-app-jwt.ts) in place of the key; other auth as it is. An installation client is made
 * from the app's auth state, which then holds the JWT signer already, beside the key Probot merges
 * in again: auth-app takes one or the other, so the key goes.
 */
function withCachedJwt(auth: unknown): { auth?: Record<string, unknown> } {
  if (typeof auth !== "object" || auth === null) return {};
  const { privateKey, createJwt, ...rest } = auth as Record<string, unknown>;
  if (rest.appId === undefined || typeof privateKey !== "string") return {};
  return { auth: { ...rest, createJwt: createJwt ?? sharedAppJwt(privateKey) } };
}

/**
 * The Octokit class Probot builds its clients from: counts every call, paces writes as above,
 * retries (twice) after primary and secondary rate limits instead of giving up, retries a
 * failed call as plugin-retry did (retry-failed-calls.ts), and signs the app's JWT once every
 * few minutes instead of for every call (cached-app-jwt.ts).
 */
export function createOctokitClass(options: OctokitClassOptions): typeof ProbotOctokit {
  const limiters = createLimiters(options.gate);
  const log = options.log.child({ name: "octokit" });
  const retryTwice = (kind: string) => (retryAfter: number, req: { method: string; url: string; request: { retryCount: number } }) => {
    const again = req.request.retryCount < 2;
    log.warn({ method: req.method, url: req.url, retryAfter, again }, `GitHub ${kind} rate limit hit`);
    return again;
  };
  // A function default runs on the options Probot computed, so what is set here wins over them.
  // `retry` (plugin-retry's settings, as tests pass them) now sets our retryFailedCalls.
  const { throttle, retry, ...overrides } = (options.overrides ?? {}) as { throttle?: Record<string, unknown>; retry?: Record<string, unknown> };
  return ProbotOctokit.plugin(countApiCalls, retryFailedCalls).defaults((computed: Record<string, any>) => ({
    ...computed,
    ...withCachedJwt(computed.auth),
    // Probot's plugin-retry built a Bottleneck for every request; retryFailedCalls retries the same way without one.
    retry: { enabled: false },
    failedCallRetry: { ...retry },
    onApiCall: options.onApiCall,
    ...(options.fetch ? { request: { ...computed.request, fetch: options.fetch } } : {}),
    throttle: {
      ...computed.throttle,
      ...limiters,
      // Made here, so once per client like the plugin's own Bottleneck (this function runs for each new client).
      retryLimiter: retryOnRateLimit(),
      onRateLimit: retryTwice("primary"),
      onSecondaryRateLimit: retryTwice("secondary"),
      ...throttle,
    },
    ...overrides,
  })) as typeof ProbotOctokit;
}
