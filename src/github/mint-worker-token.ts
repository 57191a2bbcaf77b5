import type { GitHub } from "./types.js";

export interface WorkerToken {
  token: string;
  expiresAt: string;
}

/**
 * Mints the worker's installation token: one repository, `contents: write`, nothing else. It lives
 * at most an hour (GitHub's limit) and is revoked at teardown.
 */
export async function mintWorkerToken(appOctokit: GitHub, installationId: number, repoId: number): Promise<WorkerToken> {
  const { data } = await appOctokit.rest.apps.createInstallationAccessToken({
    installation_id: installationId,
    repository_ids: [repoId],
    permissions: { contents: "write" },
  });
  return { token: data.token, expiresAt: data.expires_at };
}
