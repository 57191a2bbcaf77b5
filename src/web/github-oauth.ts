import type { SignInConfig } from "../config/env.js";

/**
 * GitHub's OAuth web flow for GitHub Apps: send the browser to `/login/oauth/authorize`, trade the
 * code it brings back for a user-to-server token, and revoke that token at sign-out.
 * https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app
 */
export function authorizeUrl(signIn: SignInConfig, options: { redirectUri: string; state: string }): string {
  const url = new URL(`${signIn.webUrl}/login/oauth/authorize`);
  url.searchParams.set("client_id", signIn.clientId);
  url.searchParams.set("redirect_uri", options.redirectUri);
  url.searchParams.set("state", options.state);
  // Never offer to sign up for a GitHub account halfway through signing in to a job page.
  url.searchParams.set("allow_signup", "false");
  return url.toString();
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
  let data: Record<string, unknown>;
  try {
    const res = await fetch(`${signIn.webUrl}/login/oauth/access_token`, {
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/json", "user-agent": "agent-work" },
      body: JSON.stringify({ client_id: signIn.clientId, client_secret: signIn.clientSecret, code: options.code, redirect_uri: options.redirectUri }),
      signal: AbortSignal.timeout(10_000),
    });
    data = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new SignInFailed(`GitHub answered ${res.status}`);
  } catch (err) {
    if (err instanceof SignInFailed) throw err;
    throw new SignInFailed(`GitHub did not answer the sign-in (${err instanceof Error ? err.name : "error"})`);
  }
  // GitHub answers 200 with `error` for a bad or expired code.
  if (typeof data.access_token !== "string" || data.access_token === "") {
    if (typeof data.error === "string") throw new SignInFailed(`GitHub said ${data.error.slice(0, 100)}`, true);
    throw new SignInFailed("GitHub gave no token");
  }
  const expires = Number(data.expires_in);
  return { token: data.access_token, ...(Number.isFinite(expires) && expires > 0 ? { expiresInSeconds: expires } : {}) };
}

/** Best effort: a token that outlives its session is one less thing a stolen laptop holds. */
export async function revokeUserToken(signIn: SignInConfig, apiUrl: string, token: string): Promise<boolean> {
  try {
    const res = await fetch(`${apiUrl}/applications/${encodeURIComponent(signIn.clientId)}/token`, {
      method: "DELETE",
      headers: {
        accept: "application/vnd.github+json",
        authorization: `Basic ${Buffer.from(`${signIn.clientId}:${signIn.clientSecret}`).toString("base64")}`,
        "content-type": "application/json",
        "user-agent": "agent-work",
      },
      body: JSON.stringify({ access_token: token }),
      signal: AbortSignal.timeout(10_000),
    });
    return res.status === 204;
  } catch {
    return false;
  }
}
