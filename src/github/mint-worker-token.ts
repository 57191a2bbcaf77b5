import type { GitHub } from "./types.js";

export interface WorkerToken {
  token: string;
  expiresAt: string;
}

/**
 * Mints the worker's installation token: one repository, `contents: write` (or `read` for a run
 * that pushes nothing, `/agent ask`), nothing else. It lives at most an hour (GitHub's limit) and
 * is revoked at teardown.
 */
export async function mintWorkerToken(appOctokit: GitHub, installationId: number, repoId: number, contents: "write" | "read" = "write"): Promise<WorkerToken> {
  const { data } = await appOctokit.rest.apps.createInstallationAccessToken({
    installation_id: installationId,
    repository_ids: [repoId],
    permissions: { contents },
  });
  return { token: data.token, expiresAt: data.expires_at };
}
