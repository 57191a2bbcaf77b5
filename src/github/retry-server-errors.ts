import type { Octokit } from "@octokit/core";
import type { OctokitOptions } from "@octokit/core/types";

/** The same options as @octokit/plugin-retry's `retry`. */
export interface RetryServerErrorsOptions {
  enabled?: boolean;
  /** Retries after the first try (a request may override it with `request.retries`). */
  retries?: number;
  /** Statuses that mean the request itself is wrong (or a rate limit, the throttling plugin's): never retried. */
  doNotRetry?: number[];
  /** The n-th retry waits n² times this, in ms. */
  retryAfterBaseValue?: number;
}

const DEFAULTS: Required<RetryServerErrorsOptions> = { enabled: true, retries: 3, doNotRetry: [400, 401, 403, 404, 410, 422, 451], retryAfterBaseValue: 1000 };

/**
 * What @octokit/plugin-retry does for REST calls — an answer GitHub may give differently next time
 * (5xx, or a network error, which Octokit reports as 500) is asked again up to three times, after
 * 1, 4 and 9 s — without the Bottleneck limiter, its events and its promises that the plugin builds
 * for every single request (under a burst, most of what was left of the GitHub client's own CPU).
 * Probot's plugin is switched off where this one is on (src/github/octokit-class.ts).
 */
export function retryServerErrors(octokit: Octokit, octokitOptions: OctokitOptions & { retryServerErrors?: RetryServerErrorsOptions }): void {
  const options = { ...DEFAULTS, ...octokitOptions.retryServerErrors };
  if (!options.enabled) return;
  octokit.hook.wrap("request", async (request, requestOptions) => {
    for (let retryCount = 0; ; retryCount++) {
      try {
        return await request(requestOptions);
      } catch (error) {
        const { status, request: failed } = error as { status?: number; request?: unknown };
        const retries = (requestOptions.request as { retries?: number } | undefined)?.retries ?? options.retries;
        // Only GitHub's answers (a RequestError carries its request), not our own bugs.
        if (failed === undefined || status === undefined || status < 400 || options.doNotRetry.includes(status) || retryCount >= retries) throw error;
        // The throttling plugin lets a retry (retryCount > 0) past its limiters, as with plugin-retry.
        requestOptions.request = { ...requestOptions.request, retryCount: retryCount + 1 } as typeof requestOptions.request;
        await new Promise((resolve) => setTimeout(resolve, (retryCount + 1) ** 2 * options.retryAfterBaseValue));
      }
    }
  });
}
