import type { IncomingMessage, ServerResponse } from "node:http";
import type { Job } from "../../jobs/types.js";
import type { LogLine } from "../../logs/job-log.js";
import { isTerminal } from "../../jobs/state.js";
import { atLeast } from "../github-user-api.js";
import { findViewableJob } from "../find-viewable-job.js";
import { logLineEvent } from "../render/log-lines.js";
import { renderJobSummary } from "../render/job-summary.js";
import { jobPageTitle } from "../render/job-page.js";
import { securityHeaders, type Session, type WebContext } from "../web-context.js";
import { githubWebUrl } from "./job-page.js";

export interface StreamTimings {
  /** How often the job row is read for state changes. */
  pollMs: number;
  /** Comment lines that keep proxies from closing an idle stream. */
  heartbeatMs: number;
  /** A stream ends after this; the browser reconnects and its access is checked again. */
  maxMs: number;
  /**
   * How often an open stream asks GitHub again, with the viewer's token, whether they may still
   * read the repository; when they may not (or GitHub cannot say), the stream ends.
   */
  recheckMs: number;
  /** After the job ends, how long to wait for its last log lines (the log writes in batches). */
  settleMs: number;
}

export const DEFAULT_STREAM_TIMINGS: StreamTimings = { pollMs: 1000, heartbeatMs: 15_000, maxMs: 10 * 60_000, settleMs: 1000, recheckMs: 120_000 };

/**
 * GET /jobs/<id>/events?after=<line id>: the job's log as Server-Sent Events, from the line after
 * the last one the page showed (or the browser's Last-Event-ID on a reconnect), then live from
 * JobLog.subscribe; plus a `job` event with the re-rendered summary when the stream opens and
 * whenever the job changes, and
 * `end` once it is over and its last lines are out. Returns when the stream has ended.
 */
export async function streamJobEvents(
  ctx: WebContext,
  session: Session,
  req: IncomingMessage,
  res: ServerResponse,
  jobId: string,
  url: URL,
  timings: StreamTimings,
  track: (stop: () => void) => () => void,
): Promise<void> {
  const found = await findViewableJob(ctx, session, jobId);
  if (!found) {
    res.writeHead(404, securityHeaders()).end();
    return;
  }
  const { deps } = ctx;
  let canCancel = atLeast(found.permission, deps.config.requiredPermission);
  const csrf = ctx.csrfToken(session);
  const lastEventId = Number(req.headers["last-event-id"]);
  let lastSent = Math.max(Number(url.searchParams.get("after")) || 0, Number.isFinite(lastEventId) ? lastEventId : 0);

  res.writeHead(200, {
    ...securityHeaders(),
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.write("retry: 2000\n\n");

  const send = (line: LogLine) => {
    if (line.id <= lastSent) return;
    lastSent = line.id;
    res.write(`event: line\nid: ${line.id}\ndata: ${logLineEvent(line)}\n\n`);
  };
  const sendJob = async (job: Job) => {
    const modelUsage = job.costUsd !== null ? ((await deps.ledger.get(job.id))?.agentUsage ?? null) : null;
    if (closed) return;
    const summary = renderJobSummary(job, { githubUrl: githubWebUrl(ctx), canCancel, csrf, now: deps.now(), modelUsage }).value;
    res.write(`event: job\ndata: ${JSON.stringify({ state: job.state, title: jobPageTitle(job), summary })}\n\n`);
  };

  let closed = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const timers: NodeJS.Timeout[] = [];
  // Live lines wait in `held` until the backlog is out, so none is lost or sent twice.
  let held: LogLine[] | undefined = [];
  const unsubscribe = deps.logs.subscribe(jobId, (line) => {
    if (held) held.push(line);
    else if (!closed) send(line);
  });
  const stop = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    for (const t of timers) clearInterval(t);
    untrack();
    res.end();
    resolveDone();
  };
  const untrack = track(stop);
  res.on("close", stop);

  /**
   * Access was checked when the stream opened; a stream lasts minutes, and a person removed from
   * the repository meanwhile must stop receiving its log. Asked fresh (not from the minute's
   * cache), with their own token. Fails closed: if GitHub cannot answer, the stream ends and the
   * browser's reconnect goes through the full check, which shows what went wrong.
   */
  let checking = false;
  const recheckAccess = async () => {
    if (checking || closed) return;
    checking = true;
    try {
      const permission = session.expiresAt > deps.now() ? await ctx.permission(session, found.job.repoId, { fresh: true }) : "none";
      if (closed) return;
      if (permission === "none") {
        deps.log.info({ jobId, login: session.login }, "job page stream ended: the viewer may no longer read the repository");
        res.write(`event: end\ndata: ${JSON.stringify({ reason: "access" })}\n\n`);
        stop();
        return;
      }
      canCancel = atLeast(permission, deps.config.requiredPermission);
    } catch (err) {
      if (closed) return;
      deps.log.warn(
        { jobId, login: session.login, reason: err instanceof Error ? err.message : String(err) },
        "job page stream ended: could not re-check the viewer's access",
      );
      stop();
    } finally {
      checking = false;
    }
  };

  const drainStored = async () => {
    for (;;) {
      const batch = await deps.logs.read(jobId, lastSent, 1000);
      for (const line of batch) send(line);
      if (batch.length < 1000 || closed) return;
    }
  };

  try {
    await drainStored();
    for (const line of held) send(line);
    held = undefined;

    // The page was rendered a moment (on a loaded machine, seconds) before this stream opened, and
    // a reconnect may come minutes later: the job may have moved on, or ended, meanwhile. So the
    // stream always opens with the job as it is now.
    await sendJob(found.job);
    let seen = `${found.job.state}|${found.job.updatedAt}|${found.job.cancelRequestedBy ?? ""}`;
    let ending = false;
    const finish = async () => {
      ending = true;
      // The runner flushes the last lines after the final state change: wait for them.
      await new Promise((r) => setTimeout(r, timings.settleMs));
      if (closed) return;
      await drainStored();
      res.write("event: end\ndata: {}\n\n");
      stop();
    };
    if (isTerminal(found.job.state)) {
      await finish();
      return await done;
    }
    timers.push(
      setInterval(() => {
        if (ending || closed) return;
        void deps.store
          .get(jobId)
          .then(async (job) => {
            if (!job || closed) return;
            // Lines written by another replica (the one running the job) reach this page only
            // through the store; send() drops what the live subscription already delivered.
            if (!isTerminal(job.state)) await drainStored();
            const now = `${job.state}|${job.updatedAt}|${job.cancelRequestedBy ?? ""}`;
            if (now !== seen) {
              seen = now;
              await sendJob(job);
            }
            if (isTerminal(job.state) && !ending) await finish();
          })
          .catch((err) => deps.log.warn({ err, jobId }, "job page stream could not read the job"));
      }, timings.pollMs),
      setInterval(() => !closed && res.write(": keep-alive\n\n"), timings.heartbeatMs),
      setInterval(() => void recheckAccess(), timings.recheckMs),
    );
    timers.push(setTimeout(stop, timings.maxMs));
  } catch (err) {
    deps.log.warn({ err, jobId }, "job page stream failed");
    stop();
  }
  return done;
}
