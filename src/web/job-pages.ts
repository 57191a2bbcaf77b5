import type { IncomingMessage, ServerResponse } from "node:http";
import { GitHubUnavailable, TokenRejected } from "./github-user-api.js";
import { renderMessage } from "./render/layout.js";
import { serveAsset } from "./routes/assets.js";
import { cancelJob } from "./routes/cancel-job.js";
import { showJobPage } from "./routes/job-page.js";
import { DEFAULT_STREAM_TIMINGS, streamJobEvents, type StreamTimings } from "./routes/job-events.js";
import { showJobsList } from "./routes/jobs-list.js";
import { finishSignIn, signOut, startSignIn } from "./routes/sign-in.js";
import { securityHeaders, WebContext, type WebDeps } from "./web-context.js";

export interface JobPages {
  /** A Probot `addHandler` handler: true when it answered the request. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** Ends every open live stream (the HTTP server cannot close while one is open). */
  close(): void;
}

const JOB = /^\/jobs\/([^/]+)$/;
const EVENTS = /^\/jobs\/([^/]+)\/events$/;
const CANCEL = /^\/jobs\/([^/]+)\/cancel$/;

/**
 * The job pages: `/jobs`, `/jobs/<id>` (with its live log at `/jobs/<id>/events` and Cancel at
 * `/jobs/<id>/cancel`), sign-in at `/auth/*`, and their stylesheet and script at `/assets/*`.
 * Nothing but the assets and the sign-in itself is served to someone not signed in.
 */
export function createJobPages(deps: WebDeps, options: { streamTimings?: Partial<StreamTimings> } = {}): JobPages {
  const ctx = new WebContext(deps);
  const timings = { ...DEFAULT_STREAM_TIMINGS, recheckMs: deps.config.logStreamRecheckSeconds * 1000, ...options.streamTimings };
  const streams = new Set<() => void>();
  const track = (stop: () => void) => {
    streams.add(stop);
    return () => streams.delete(stop);
  };

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    const method = req.method ?? "GET";
    if (method === "GET" && path.startsWith("/assets/")) return serveAsset(path, res);
    const ours = path === "/jobs" || path.startsWith("/jobs/") || path.startsWith("/auth/");
    if (!ours) return false;

    if (!ctx.signIn) {
      ctx.sendHtml(
        res,
        503,
        renderMessage({
          title: "Sign-in is not set up",
          text: "Job pages are shown only to people signed in with GitHub. The operator sets GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (the GitHub App's OAuth client; Probot's setup page writes them to .env) and restarts agent-work.",
        }),
      );
      return true;
    }
    if (method === "GET" && path === "/auth/login") return (startSignIn(ctx, req, res, url), true);
    if (method === "GET" && path === "/auth/callback") return (await finishSignIn(ctx, req, res, url), true);
    if (method === "POST" && path === "/auth/logout") return (await signOut(ctx, req, res), true);

    const session = ctx.session(req);
    if (!session) {
      if (method === "GET" && !EVENTS.test(path)) ctx.redirect(res, `/auth/login?next=${encodeURIComponent(path + url.search)}`);
      else res.writeHead(401, securityHeaders()).end();
      return true;
    }
    try {
      let m: RegExpExecArray | null;
      if (method === "GET" && path === "/jobs") await showJobsList(ctx, session, res, url);
      else if (method === "GET" && (m = JOB.exec(path))) await showJobPage(ctx, session, res, m[1]!, url);
      else if (method === "GET" && (m = EVENTS.exec(path))) await streamJobEvents(ctx, session, req, res, m[1]!, url, timings, track);
      else if (method === "POST" && (m = CANCEL.exec(path))) await cancelJob(ctx, session, req, res, m[1]!);
      else ctx.sendHtml(res, 404, renderMessage({ title: "Not found", text: "Nothing lives at this address.", link: { href: "/jobs", label: "All jobs" } }));
    } catch (err) {
      if (res.headersSent) throw err;
      if (err instanceof TokenRejected) {
        // GitHub no longer takes their token (expired, revoked): sign in again, then come back.
        ctx.forget(session);
        ctx.redirect(res, `/auth/login?next=${encodeURIComponent(method === "GET" ? path + url.search : "/jobs")}`, { "set-cookie": ctx.endSession(req) });
      } else if (err instanceof GitHubUnavailable) {
        deps.log.warn({ reason: err.message, path }, "job page: GitHub did not answer a permission check");
        ctx.sendHtml(
          res,
          503,
          renderMessage({
            title: "GitHub did not answer",
            text: "agent-work asks GitHub who may see each job, and it did not answer. Try again in a minute.",
            link: { href: path, label: "Try again" },
          }),
        );
      } else {
        throw err;
      }
    }
    return true;
  }

  return {
    async handle(req, res) {
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://localhost");
      } catch {
        return false;
      }
      return route(req, res, url);
    },
    close() {
      for (const stop of [...streams]) stop();
    },
  };
}
