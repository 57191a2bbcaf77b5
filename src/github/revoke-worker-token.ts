import type { FetchLike } from "./node-http-fetch.js";

/**
 * Revokes an installation token with the token itself (`DELETE /installation/token`). A plain
 * request, not the app's Octokit: that would authenticate as the app, not as the token being
 * revoked. `fetch` is the controller's kept-alive GitHub connection pool when given (the built-in
 * fetch opened a connection per revoke). An already expired or revoked token answers 401, which
 * is as good as revoked.
 */
export async function revokeWorkerToken(
  baseUrl: string,
  token: string,
  fetch: FetchLike = globalThis.fetch as unknown as FetchLike,
): Promise<"revoked" | "already-invalid"> {
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
