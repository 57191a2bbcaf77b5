import { deleteToken, exchangeWebFlowCode, getWebFlowAuthorizationUrl } from "@octokit/oauth-methods";
import { request } from "@octokit/request";
import { RequestError } from "@octokit/request-error";
import type { SignInConfig } from "../config/env.js";

/**
 * GitHub's OAuth web flow for GitHub Apps, through @octokit/oauth-methods (installed with Probot):
 * send the browser to `/login/oauth/authorize`, trade the code it brings back for a user-to-server
 * token, and revoke that token at sign-out.
 * https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app
 */

/** Every call gives up after 10 s: a sign-in page that hangs is worse than one that says "try again". */
const TIMEOUT_MS = 10_000;

function webRequest(signIn: SignInConfig) {
  // oauth-methods sends the OAuth endpoints to the web host it derives from this base URL (github.com
  // for api.github.com; the same host, without /api/v3, for GitHub Enterprise Server).
  return request.defaults({ baseUrl: signIn.webUrl, headers: { "user-agent": "agent-work" }, request: { signal: AbortSignal.timeout(TIMEOUT_MS) } });
}

export function authorizeUrl(signIn: SignInConfig, options: { redirectUri: string; state: string }): string {
  return getWebFlowAuthorizationUrl({
    clientType: "github-app",
    clientId: signIn.clientId,
    redirectUrl: options.redirectUri,
    state: options.state,
    // Never offer to sign up for a GitHub account halfway through signing in to a job page.
    allowSignup: false,
    request: webRequest(signIn),
  }).url;
}

/**
 * The sign-in failed in a way the person can retry (a stale or reused code, GitHub down).
 * `refusedByGitHub`: GitHub answered and said no to the code (the link was bad, 400), rather than
 * not answering (502).
 */
export class SignInFailed extends Error {
  constructor(
    message: string,
    readonly refusedByGitHub = false,
  ) {
    super(message);
  }
}

export async function exchangeCode(
  signIn: SignInConfig,
  options: { code: string; redirectUri: string },
): Promise<{ token: string; expiresInSeconds?: number }> {
  try {
    const { authentication } = await exchangeWebFlowCode({
      clientType: "github-app",
      clientId: signIn.clientId,
      clientSecret: signIn.clientSecret,
      code: options.code,
      redirectUrl: options.redirectUri,
      request: webRequest(signIn),
    });
    if (!authentication.token) throw new SignInFailed("GitHub gave no token");
    const expiresAt = "expiresAt" in authentication ? Date.parse(authentication.expiresAt) : NaN;
    const expiresInSeconds = Math.round((expiresAt - Date.now()) / 1000);
    return { token: authentication.token, ...(Number.isFinite(expiresInSeconds) && expiresInSeconds > 0 ? { expiresInSeconds } : {}) };
  } catch (err) {
    if (err instanceof SignInFailed) throw err;
    if (err instanceof RequestError && err.response) {
      // GitHub answers 200 with `error` for a bad or expired code; oauth-methods turns it into a 400.
      const said = (err.response.data as { error?: unknown } | undefined)?.error;
      if (typeof said === "string") throw new SignInFailed(`GitHub said ${said.slice(0, 100)}`, true);
      throw new SignInFailed(`GitHub answered ${err.status}`);
    }
    throw new SignInFailed(`GitHub did not answer the sign-in (${err instanceof Error ? err.name : "error"})`);
  }
}

/** Best effort: a token that outlives its session is one less thing a stolen laptop holds. */
export async function revokeUserToken(signIn: SignInConfig, apiUrl: string, token: string): Promise<boolean> {
  try {
    const res = await deleteToken({
      clientType: "github-app",
      clientId: signIn.clientId,
      clientSecret: signIn.clientSecret,
      token,
      request: request.defaults({ baseUrl: apiUrl, headers: { "user-agent": "agent-work" }, request: { signal: AbortSignal.timeout(TIMEOUT_MS) } }),
    });
    return res.status === 204;
  } catch {
    return false;
  }
}
