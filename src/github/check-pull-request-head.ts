import type { GitHub } from "./types.js";

export type HeadVerdict = { allowed: true } | { allowed: false; reason: string };

/**
 * Whether the head branch of a same-repository pull request is one the agent may push to. The
 * worker pushes the agent's commit onto the PR's own branch, so a PR whose head is the default
 * branch (or another protected one) would have the agent write straight onto it, past review (an
 * App's token may even be allowed to bypass the protection). Fails closed: a branch that cannot be
 * looked at counts as protected.
 */
export async function checkPullRequestHead(
  octokit: GitHub,
  target: { owner: string; repo: string; head: string; defaultBranches: readonly (string | undefined)[] },
): Promise<HeadVerdict> {
  const { owner, repo, head } = target;
  if (target.defaultBranches.includes(head)) {
    return {
      allowed: false,
      reason: `this pull request's branch \`${head}\` is the repository's default branch; the agent pushes to the pull request's branch, and never to the default branch`,
    };
  }
  try {
    const { data } = await octokit.rest.repos.getBranch({ owner, repo, branch: head });
    if (data.protected)
      return {
        allowed: false,
        reason: `this pull request's branch \`${head}\` is protected; the agent pushes to the pull request's branch, and never to a protected one`,
      };
    return { allowed: true };
  } catch (err) {
    const status = (err as { status?: number }).status;
    return {
      allowed: false,
      reason: `could not check whether the branch \`${head}\` is protected (GitHub answered ${status ?? "with an error"}), so nothing was started`,
    };
  }
}
