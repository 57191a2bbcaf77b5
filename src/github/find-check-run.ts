import type { GitHub } from "./types.js";

/**
 * The check run a job created on a commit, found by its `external_id` (the job id): how a retry
 * adopts a check run whose creation answered but was never recorded, instead of making a second.
 */
export async function findCheckRun(
  octokit: GitHub,
  where: { owner: string; repo: string; sha: string; name: string; jobId: string },
): Promise<number | undefined> {
  const { data } = await octokit.rest.checks.listForRef({
    owner: where.owner,
    repo: where.repo,
    ref: where.sha,
    check_name: where.name,
    filter: "all",
    per_page: 100,
  });
  return data.check_runs.find((c) => c.external_id === where.jobId)?.id;
}
