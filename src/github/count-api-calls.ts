import type { Octokit } from "@octokit/core";
import type { OctokitOptions } from "@octokit/core/types";

export type ApiCallObserver = (call: { method: string; route: string }) => void;

/**
 * An Octokit plugin that reports every REST call (method + route template) to `options.onApiCall`,
 * for the metrics and for tests that count a job's calls.
 */
export function countApiCalls(octokit: Octokit, options: OctokitOptions & { onApiCall?: ApiCallObserver }): void {
  const observe = options.onApiCall;
  if (!observe) return;
  octokit.hook.before("request", (opts) => {
    observe({ method: String(opts.method), route: String(opts.url) });
  });
}
