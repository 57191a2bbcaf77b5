import type { GitHub } from "./types.js";

/** Whether a branch exists on GitHub (404 is no; any other error is thrown). */
export async function branchExists(octokit: GitHub, where: { owner: string; repo: string; branch: string }): Promise<boolean> {
  try {
    await octokit.rest.repos.getBranch(where);
    return true;
  } catch (err) {
    if ((err as { status?: number }).status === 404) return false;
    throw err;
  }
}
