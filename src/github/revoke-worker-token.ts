/**
 * Revokes an installation token with the token itself (`DELETE /installation/token`). Plain fetch:
 * the app's Octokit would authenticate as the app, not as the token being revoked. An already
 * expired or revoked token answers 401, which is as good as revoked.
 */
export async function revokeWorkerToken(baseUrl: string, token: string): Promise<"revoked" | "already-invalid"> {
  const res = await fetch(`${baseUrl.replace(/\/$/, "")}/installation/token`, {
    method: "DELETE",
    headers: {
      authorization: `token ${token}`,
      accept: "application/vnd.github+json",
      "x-github-api-version": "2022-11-28",
      "user-agent": "agent-work",
    },
  });
  if (res.status === 204) return "revoked";
  if (res.status === 401) return "already-invalid";
  throw new Error(`revoking the worker token failed: GitHub answered ${res.status}`);
}
