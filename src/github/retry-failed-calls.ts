import type { Octokit } from "@octokit/core";
import type { OctokitOptions } from "@octokit/core/types";

/** Settings, as @octokit/plugin-retry names them (Octokit option `failedCallRetry`). */
export interface FailedCallRetryOptions {
  enabled?: boolean;
  /** How many times a call is tried again (3). */
  retries?: number;
  /** Statuses not worth a retry: the request itself is wrong, or forbidden. */
  doNotRetry?: number[];
  /** The n-th retry waits n² times this (1 s: 1 s, 4 s, 9 s). */
  retryAfterBaseValue?: number;
}

const DEFAULTS: Required<FailedCallRetryOptions> = { enabled: true, retries: 3, doNotRetry: [400, 401, 403, 404, 410, 422, 451], retryAfterBaseValue: 1000 };

/**
 * POSTs that are safe to send again after a 5xx: a new token, a reaction (GitHub keeps one per
 * person and content), a pull request (a second answers 422, which open-pull-request.ts reads as
 * "already there"), a redelivery (the delivery id de-duplicates it). Any other POST creates
 * something GitHub does not de-duplicate (an issue comment, a review reply, a check run), and a
 * 502 can come after it was made: sent again, the issue got two status comments. Those are not
 * retried here; their callers record the intent first and, on their next try, look for what the
 * failed call may have made (ensure-status-surfaces.ts, deliver-outbox.ts, report-job.ts).
 */
const REPEATABLE_POSTS = [/\/access_tokens$/, /\/reactions$/, /^\/repos\/\{owner\}\/\{repo\}\/pulls$/, /\/attempts$/];

/** Whether GitHub may have done what a call asked although it answered `status`. */
function mayHaveHappened(method: unknown, url: unknown, status: number): boolean {
  return status >= 500 && method === "POST" && !(typeof url === "string" && REPEATABLE_POSTS.some((r) => r.test(url)));
}

interface FailedCall {
  status?: unknown;
  request?: unknown;
}

/**
 * What @octokit/plugin-retry does for REST calls (a call answered 4xx/5xx, other than the
 * statuses in `doNotRetry`, or failed on the network, is tried again up to 3 times, 1 s, 4 s and
 * 9 s later) — except a POST that may have made a duplicate (REPEATABLE_POSTS) — without what it costs: it builds a Bottleneck for every request to run that
 * retry, ~5% of the controller's CPU a job under a burst (bench/burst.ts --profile). Probot's
 * plugin-retry is switched off where this one is plugged in (octokit-class.ts). Not carried over:
 * its GraphQL error handling; the controller makes no GraphQL calls.
 */
export function retryFailedCalls(octokit: Octokit, options: OctokitOptions): void {
  const settings = { ...DEFAULTS, ...(options as { failedCallRetry?: FailedCallRetryOptions }).failedCallRetry };
  if (!settings.enabled) return;
  octokit.hook.wrap("request", async (request, callOptions) => {
    for (let retryCount = 0; ; retryCount++) {
      try {
        return await request(callOptions);
      } catch (error) {
        const failed = error as FailedCall;
        const status = typeof failed.status === "number" ? failed.status : undefined;
        // A RequestError (it carries the request), not a bug in a hook; and a status worth another try.
        const retryable =
          failed.request !== undefined &&
          status !== undefined &&
          status >= 400 &&
          !settings.doNotRetry.includes(status) &&
          !mayHaveHappened(callOptions.method, callOptions.url, status);
        const retries = typeof callOptions.request?.retries === "number" ? callOptions.request.retries : settings.retries;
        if (!retryable || retryCount >= retries) throw error;
        // The throttling plugin and our rate-limit handlers read the count from here, as plugin-retry set it.
        callOptions.request = { ...callOptions.request, retryCount: retryCount + 1 };
        await new Promise((resolve) => setTimeout(resolve, settings.retryAfterBaseValue * (retryCount + 1) ** 2));
      }
    }
  });
}
