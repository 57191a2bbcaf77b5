import type { GitHub } from "./types.js";

export interface PullRequestRef {
  number: number;
  url: string;
  headSha: string;
}

/**
 * Opens the draft PR for a pushed branch, or adopts the one that already exists for that branch
 * (a retried report after a crash must not open a second PR). Creating first and looking only on
 * GitHub's 422 saves a call on every normal job.
 */
export async function openPullRequest(
  octokit: GitHub,
  input: { owner: string; repo: string; head: string; base: string; title: string; body: string; draft: boolean },
): Promise<PullRequestRef> {
  try {
    const { data } = await octokit.rest.pulls.create(input);
    return { number: data.number, url: data.html_url, headSha: data.head.sha };
  } catch (err) {
    // 422 "A pull request already exists": someone (or a previous attempt) got there first.
    if ((err as { status?: number }).status === 422) {
      const found = await findOpenPullRequest(octokit, input);
      if (found) return found;
    }
    throw err;
  }
}

async function findOpenPullRequest(octokit: GitHub, input: { owner: string; repo: string; head: string }): Promise<PullRequestRef | undefined> {
  const { data } = await octokit.rest.pulls.list({ owner: input.owner, repo: input.repo, head: `${input.owner}:${input.head}`, state: "open", per_page: 1 });
  const pr = data[0];
  return pr ? { number: pr.number, url: pr.html_url, headSha: pr.head.sha } : undefined;
}
