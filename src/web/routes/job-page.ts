import type { ServerResponse } from "node:http";
import { atLeast } from "../github-user-api.js";
import { findViewableJob } from "../find-viewable-job.js";
import { renderJobPage } from "../render/job-page.js";
import { renderMessage } from "../render/layout.js";
import type { Session, WebContext } from "../web-context.js";

/** The most lines rendered into the page; the live stream sends the rest. */
const PAGE_LINES = 5000;

/** GET /jobs/<id>. */
export async function showJobPage(ctx: WebContext, session: Session, res: ServerResponse, jobId: string, url: URL): Promise<void> {
  const viewer = { login: session.login, csrf: ctx.csrfToken(session) };
  const found = await findViewableJob(ctx, session, jobId);
  if (!found) {
    ctx.sendHtml(
      res,
      404,
      renderMessage({
        title: "Job not found",
        text: "There is no such job, or it belongs to a repository you cannot read.",
        viewer,
        link: { href: "/jobs", label: "All jobs" },
      }),
    );
    return;
  }
  const { job, permission } = found;
  const lines = await ctx.deps.logs.read(job.id, 0, PAGE_LINES);
  const modelUsage = job.costUsd !== null ? ((await ctx.deps.ledger.get(job.id))?.agentUsage ?? null) : null;
  ctx.sendHtml(
    res,
    200,
    renderJobPage(job, lines, {
      viewer,
      truncated: lines.length === PAGE_LINES,
      githubUrl: githubWebUrl(ctx),
      canCancel: atLeast(permission, ctx.deps.config.requiredPermission),
      csrf: viewer.csrf,
      cancelSent: url.searchParams.get("cancel") === "sent",
      now: ctx.deps.now(),
      modelUsage,
    }),
  );
}

/** Where issues and pull requests live on the web (github.com or the GHE host). */
export function githubWebUrl(ctx: WebContext): string {
  const { gheHost, gheProtocol } = ctx.deps.config;
  return gheHost ? `${gheProtocol}://${gheHost}` : "https://github.com";
}
