import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { authorizeUrl, exchangeCode, revokeUserToken, SignInFailed } from "../github-oauth.js";
import { fetchUser, GitHubUnavailable, TokenRejected } from "../github-user-api.js";
import { cookieHeader, readCookie } from "../signed-cookies.js";
import { renderMessage } from "../render/layout.js";
import { readForm, type WebContext } from "../web-context.js";

const STATE_COOKIE = "aw_oauth";
const STATE_MS = 10 * 60_000;

const HERE = "http://agent-work.invalid";

/**
 * Only a path on this server may follow sign-in: never another site (no open redirect). The path is
 * returned as the URL parser serialises it, percent-encoded and so plain ASCII: it goes into a
 * Location header, where Node refuses anything else (`next=/Ā` once made the callback a 500).
 */
export function safeNext(next: string | null | undefined): string {
  if (!next || next.length > 500 || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\") || /[\s\0]/.test(next)) return "/jobs";
  let url: URL;
  try {
    url = new URL(next, HERE);
  } catch {
    return "/jobs";
  }
  if (url.origin !== HERE) return "/jobs";
  const path = url.pathname + url.search;
  return /^\/(?![/\\])[\x21-\x7e]{0,2000}$/.test(path) ? path : "/jobs";
}

/** GitHub's codes are 20 hex characters; anything outside URL-safe characters is not one. */
const CODE = /^[A-Za-z0-9._~-]{1,256}$/;

/** GET /auth/login?next=/jobs/<id>: off to GitHub, with a state bound to this browser. */
export function startSignIn(ctx: WebContext, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const signIn = ctx.signIn!;
  const state = randomBytes(18).toString("base64url");
  const now = ctx.deps.now();
  const cookie = ctx.deps.cookies.sign("oauth", { state, next: safeNext(url.searchParams.get("next")) }, now + STATE_MS);
  ctx.redirect(res, authorizeUrl(signIn, { redirectUri: `${ctx.origin(req)}/auth/callback`, state }), {
    "set-cookie": cookieHeader(STATE_COOKIE, cookie, { path: "/auth", maxAgeSeconds: STATE_MS / 1000, secure: ctx.secure(req) }),
  });
}

/** GET /auth/callback?code&state: GitHub sends the browser back; trade the code, learn who it is. */
export async function finishSignIn(ctx: WebContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const signIn = ctx.signIn!;
  const clearState = cookieHeader(STATE_COOKIE, "", { path: "/auth", maxAgeSeconds: 0, secure: ctx.secure(req) });
  const pending = ctx.deps.cookies.verify<{ state: string; next: string }>("oauth", readCookie(req.headers.cookie, STATE_COOKIE), ctx.deps.now());
  const retry = { href: `/auth/login?next=${encodeURIComponent(pending?.next ?? "/jobs")}`, label: "Sign in again" };
  if (url.searchParams.get("error")) {
    ctx.sendHtml(res, 400, renderMessage({ title: "Sign-in cancelled", text: "GitHub did not sign you in, so nothing here is shown.", link: retry }), {
      "set-cookie": clearState,
    });
    return;
  }
  const code = url.searchParams.get("code");
  if (code !== null && !CODE.test(code)) {
    ctx.sendHtml(
      res,
      400,
      renderMessage({
        title: "Sign-in failed",
        text: "The sign-in link GitHub sent back is malformed (its code is not one GitHub issues), so nobody was signed in.",
        link: retry,
      }),
      { "set-cookie": clearState },
    );
    return;
  }
  // The state must be the one this browser was sent off with: a link someone else made cannot sign you in as them.
  if (!pending || !code || url.searchParams.get("state") !== pending.state) {
    ctx.sendHtml(res, 400, renderMessage({ title: "Sign-in expired", text: "That sign-in link is stale or was not started in this browser.", link: retry }), {
      "set-cookie": clearState,
    });
    return;
  }
  try {
    const { token, expiresInSeconds } = await exchangeCode(signIn, { code, redirectUri: `${ctx.origin(req)}/auth/callback` });
    const user = await fetchUser(signIn.apiUrl, token);
    ctx.deps.log.info({ login: user.login }, "signed in to the job pages");
    // Checked again: a state cookie signed before safeNext encoded paths may still be in a browser.
    ctx.redirect(res, safeNext(pending.next), { "set-cookie": [clearState, ctx.startSession(req, user, token, expiresInSeconds)] });
  } catch (err) {
    if (!(err instanceof SignInFailed) && !(err instanceof GitHubUnavailable) && !(err instanceof TokenRejected)) throw err;
    ctx.deps.log.warn({ reason: err.message }, "sign-in to the job pages failed");
    // GitHub refusing the code is a bad link (400); GitHub not answering is a bad gateway (502).
    const status = err instanceof SignInFailed && err.refusedByGitHub ? 400 : 502;
    ctx.sendHtml(res, status, renderMessage({ title: "Sign-in failed", text: `${err.message}. Try again.`, link: retry }), { "set-cookie": clearState });
  }
}

/** POST /auth/logout: forget the session here and revoke its token at GitHub. */
export async function signOut(ctx: WebContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const session = ctx.session(req);
  const form = await readForm(req);
  if (session && ctx.deps.cookies.checkToken(session.nonce, form?.get("csrf"))) {
    ctx.forget(session);
    await revokeUserToken(ctx.signIn!, ctx.signIn!.apiUrl, session.token);
    ctx.deps.log.info({ login: session.login }, "signed out of the job pages");
  }
  ctx.sendHtml(res, 200, renderMessage({ title: "Signed out", text: "You are signed out of agent-work.", link: { href: "/auth/login", label: "Sign in" } }), {
    "set-cookie": ctx.endSession(req),
  });
}
