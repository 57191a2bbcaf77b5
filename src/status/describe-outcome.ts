import type { Job } from "../jobs/types.js";

export type Conclusion = "success" | "failure" | "cancelled" | "timed_out" | "neutral";

export interface Outcome {
  conclusion: Conclusion;
  /** One line for the comment and the check title. */
  headline: string;
}

function branchLink(job: Job): string {
  return job.branch ? `[\`${job.branch}\`](https://github.com/${job.owner}/${job.repo}/tree/${job.branch})` : "";
}

/** Maps a finished job to its check conclusion and the sentence people read. */
export function describeOutcome(job: Job): Outcome | undefined {
  const partial = job.result?.branch ? ` Partial work was pushed to ${branchLink(job)}.` : "";
  switch (job.state) {
    case "succeeded":
      if (job.result?.outcome === "answered")
        return { conclusion: "success", headline: "💬 The agent answered the question in a comment below; nothing was changed or pushed" };
      if (job.result?.outcome === "patch")
        return {
          conclusion: "success",
          headline: "📝 The agent's change is below as a patch: this pull request comes from a fork, so nothing was pushed and the run held no secret",
        };
      // A PR's own branch, or an issue's branch that a run before had pushed: the PR was there already.
      if (job.prNumber && (job.prHeadRef || job.result?.continued))
        return { conclusion: "success", headline: `✅ Pushed the agent's commit to pull request #${job.prNumber}` };
      if (job.prNumber) return { conclusion: "success", headline: `✅ Opened draft pull request #${job.prNumber}` };
      // No change is not a failure of the app, but nothing to review either: GitHub's "neutral".
      return { conclusion: "neutral", headline: "➖ The agent made no changes, so there is no pull request" };
    case "failed":
      return { conclusion: "failure", headline: `❌ Failed: ${job.message ?? "unknown error"}.${partial}` };
    case "timed_out":
      return { conclusion: "timed_out", headline: `⏱️ Timed out: ${job.message ?? "the job ran past its limit"}.${partial}` };
    case "cancelled":
      return { conclusion: "cancelled", headline: `⏹️ Cancelled${job.message ? `: ${job.message}` : ""}` };
    default:
      return undefined;
  }
}
