import { request } from "@octokit/request";
import { RequestError } from "@octokit/request-error";

/**
 * The two questions the job pages ask GitHub with a signed-in person's own token: who are you, and
 * what may you do on this repository. Asking with their token (not the app's) means GitHub itself
 * decides: private repositories, org membership, SSO and removed access all count, today.
 */
export interface GitHubUser {
  login: string;
  id: number;
  name: string | null;
}

export type RepoPermission = "none" | "read" | "triage" | "write" | "maintain" | "admin";
const RANK: Record<RepoPermission, number> = { none: 0, read: 1, triage: 2, write: 3, maintain: 4, admin: 5 };

export function atLeast(permission: RepoPermission, required: RepoPermission): boolean {
  return RANK[permission] >= RANK[required];
}

/** The person's token no longer works (expired or revoked): their session is over. */
export class TokenRejected extends Error {}

/** GitHub could not answer; the caller shows an error and reveals nothing. */
export class GitHubUnavailable extends Error {}

/**
 * One GET with the person's token, through @octokit/request. Every answer comes back (a 404 or 403
 * means something here); a 401 ends the session, and no answer at all is `GitHubUnavailable`.
 */
async function get(apiUrl: string, token: string, path: string): Promise<{ status: number; data: any; rateLimited: boolean }> {
  try {
    const res = await request(`GET ${path}`, {
      baseUrl: apiUrl,
      headers: { authorization: `Bearer ${token}`, "user-agent": "agent-work", "x-github-api-version": "2022-11-28" },
      request: { signal: AbortSignal.timeout(10_000) },
    });
    return { status: res.status, data: res.data, rateLimited: false };
  } catch (err) {
    if (!(err instanceof RequestError) || !err.response) throw new GitHubUnavailable(`GET ${path} failed (${err instanceof Error ? err.name : "error"})`);
    if (err.status === 401) throw new TokenRejected("GitHub no longer accepts this sign-in");
    const rateLimited = err.status === 429 || (err.status === 403 && err.response.headers["x-ratelimit-remaining"] === "0");
    return { status: err.status, data: err.response.data, rateLimited };
  }
}

export async function fetchUser(apiUrl: string, token: string): Promise<GitHubUser> {
  const { status, data } = await get(apiUrl, token, "/user");
  if (status !== 200 || typeof data?.login !== "string") throw new GitHubUnavailable(`GET /user answered ${status}`);
  return { login: data.login, id: Number(data.id), name: typeof data.name === "string" && data.name ? data.name : null };
}

/**
 * What the person may do on the repository with this id (by id, so a renamed or transferred
 * repository stays the same one, and a new repository under an old name is not). GitHub answers
 * 404 when they cannot read it, and 403 when an org policy (SSO, IP allow list) keeps the token out.
 */
export async function repoPermission(apiUrl: string, token: string, repoId: number): Promise<RepoPermission> {
  const { status, data, rateLimited } = await get(apiUrl, token, `/repositories/${repoId}`);
  if (rateLimited) throw new GitHubUnavailable("GitHub's rate limit for this person is used up");
  if (status === 404 || status === 403) return "none";
  if (status !== 200) throw new GitHubUnavailable(`GET /repositories/${repoId} answered ${status}`);
  const p = (data?.permissions ?? {}) as Record<string, boolean>;
  if (p.admin) return "admin";
  if (p.maintain) return "maintain";
  if (p.push) return "write";
  if (p.triage) return "triage";
  // A 200 means they can see it; a public repository may come without `permissions`.
  return "read";
}
