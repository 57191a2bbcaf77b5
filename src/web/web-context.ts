import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { ControllerConfig, SignInConfig } from "../config/env.js";
import type { JobLog } from "../logs/job-log.js";
import type { Ledger } from "../cost/ledger.js";
import type { JobStore } from "../store/job-store.js";
import type { RequestStore } from "../store/request-store.js";
import type { Html } from "./html.js";
import { SignedCookies, cookieHeader, readCookie } from "./signed-cookies.js";
import { repoPermission, type RepoPermission } from "./github-user-api.js";

export interface WebDeps {
  store: JobStore;
  requests: RequestStore;
  logs: JobLog;
  /** Read only: a finished job's compute and model spend, and each repository's month. */
  ledger: Pick<Ledger, "get" | "entriesThisMonth">;
  config: ControllerConfig;
  log: Logger;
  now: () => number;
  /** Starts a scheduler pass now, so a Cancel click is answered within a second. */
  wake: () => void;
  cookies: SignedCookies;
}

/** A signed-in person, as their session cookie holds them. */
export interface Session {
  login: string;
  userId: number;
  name: string | null;
  /** Their GitHub user-to-server token; sealed in the cookie, never logged or rendered. */
  token: string;
  /** Random per sign-in; the CSRF token derives from it. */
  nonce: string;
  expiresAt: number;
}

interface SealedSession extends Omit<Session, "token" | "expiresAt"> {
  token: string;
}

const SESSION_COOKIE = "aw_session";
/** Sessions end after this at the latest (GitHub's user tokens for apps live 8 hours). */
export const MAX_SESSION_MS = 8 * 3600_000;
/** How long GitHub's answer about one person and one repository is trusted. */
const PERMISSION_TTL_MS = 60_000;

/**
 * What every route shares: the deps, the session cookie, the per-person permission cache, and how
 * a response is sent (security headers on every page).
 */
export class WebContext {
  private readonly permissions = new Map<string, { permission: RepoPermission; until: number }>();

  constructor(readonly deps: WebDeps) {}

  get signIn(): SignInConfig | undefined {
    return this.deps.config.signIn;
  }

  /** This controller's origin as browsers see it: PUBLIC_URL, else the request's own host. */
  origin(req: IncomingMessage): string {
    if (this.deps.config.publicUrl) return new URL(this.deps.config.publicUrl).origin;
    const proto = req.headers["x-forwarded-proto"] === "https" ? "https" : "http";
    return `${proto}://${req.headers.host ?? "localhost"}`;
  }

  secure(req: IncomingMessage): boolean {
    return this.origin(req).startsWith("https:");
  }

  session(req: IncomingMessage): Session | undefined {
    const now = this.deps.now();
    const raw = readCookie(req.headers.cookie, SESSION_COOKIE);
    const sealed = this.deps.cookies.verify<SealedSession & { exp: number }>("session", raw, now);
    if (!sealed) return undefined;
    const token = this.deps.cookies.decrypt(sealed.token);
    if (!token) return undefined;
    return { login: sealed.login, userId: sealed.userId, name: sealed.name, nonce: sealed.nonce, token, expiresAt: sealed.exp };
  }

  startSession(req: IncomingMessage, user: { login: string; id: number; name: string | null }, token: string, expiresInSeconds?: number): string {
    const lifetime = Math.min(MAX_SESSION_MS, expiresInSeconds ? expiresInSeconds * 1000 : MAX_SESSION_MS);
    const exp = this.deps.now() + lifetime;
    const sealed = {
      login: user.login,
      userId: user.id,
      name: user.name,
      nonce: randomBytes(16).toString("base64url"),
      token: this.deps.cookies.encrypt(token),
      exp,
    };
    const value = this.deps.cookies.sign("session", sealed, exp);
    return cookieHeader(SESSION_COOKIE, value, { path: "/", maxAgeSeconds: lifetime / 1000, secure: this.secure(req) });
  }

  endSession(req: IncomingMessage): string {
    return cookieHeader(SESSION_COOKIE, "", { path: "/", maxAgeSeconds: 0, secure: this.secure(req) });
  }

  csrfToken(session: Session): string {
    return this.deps.cookies.tokenFor(session.nonce);
  }

  /**
   * What the signed-in person may do on a repository, asked with their own token and cached a
   * minute; `fresh` asks GitHub whatever the cache holds (a long-lived stream re-checking access).
   */
  async permission(session: Session, repoId: number, options: { fresh?: boolean } = {}): Promise<RepoPermission> {
    const key = `${session.nonce}:${repoId}`;
    const now = this.deps.now();
    const cached = this.permissions.get(key);
    if (cached && cached.until > now && !options.fresh) return cached.permission;
    const permission = await repoPermission(this.signIn!.apiUrl, session.token, repoId);
    if (this.permissions.size > 10_000) this.permissions.clear();
    this.permissions.set(key, { permission, until: now + PERMISSION_TTL_MS });
    return permission;
  }

  forget(session: Session): void {
    for (const key of this.permissions.keys()) if (key.startsWith(`${session.nonce}:`)) this.permissions.delete(key);
  }

  sendHtml(res: ServerResponse, status: number, page: Html, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(status, { ...securityHeaders(), "content-type": "text/html; charset=utf-8", ...headers }).end(page.value);
  }

  redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}, status = 302): void {
    res.writeHead(status, { ...securityHeaders(), location, ...headers }).end();
  }
}

/** Nothing on these pages is cacheable or frameable, and only our own script and style may run. */
export function securityHeaders(): Record<string, string> {
  return {
    "cache-control": "no-store",
    "content-security-policy":
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
  };
}

/** Reads a small urlencoded form body; anything bigger than a Cancel form is refused. */
export async function readForm(req: IncomingMessage, limit = 4096): Promise<URLSearchParams | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}
