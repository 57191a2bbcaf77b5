import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { isActive } from "../../jobs/state.js";
import { atLeast } from "../github-user-api.js";
import { findViewableJob } from "../find-viewable-job.js";
import { renderMessage } from "../render/layout.js";
import { readForm, type Session, type WebContext } from "../web-context.js";

/**
 * POST /jobs/<id>/cancel: records a `stop` request from the signed-in person, exactly as
 * `/agent stop` would, and wakes the scheduler. The pipeline answers it with its own permission
 * check (the collaborator API against REQUIRED_PERMISSION); the check here only keeps people
 * without that permission from queueing requests that would be refused.
 */
export async function cancelJob(ctx: WebContext, session: Session, req: IncomingMessage, res: ServerResponse, jobId: string): Promise<void> {
  const viewer = { login: session.login, csrf: ctx.csrfToken(session) };
  const form = await readForm(req);
  if (!ctx.deps.cookies.checkToken(session.nonce, form?.get("csrf"))) {
    ctx.sendHtml(
      res,
      403,
      renderMessage({
        title: "Not sent",
        text: "That form is out of date (or came from another site). Reload the job page and try again.",
        viewer,
        link: { href: `/jobs/${jobId}`, label: "Back to the job" },
      }),
    );
    return;
  }
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
  const required = ctx.deps.config.requiredPermission;
  if (!atLeast(permission, required)) {
    ctx.sendHtml(
      res,
      403,
      renderMessage({
        title: "Not allowed",
        text: `Stopping a job needs ${required} access to ${job.owner}/${job.repo}; you have ${permission}.`,
        viewer,
        link: { href: `/jobs/${job.id}`, label: "Back to the job" },
      }),
    );
    return;
  }
  if (isActive(job.state) && !job.cancelRequestedBy) {
    await ctx.deps.requests.insert({
      deliveryId: `web:${randomUUID()}`,
      installationId: job.installationId,
      repoId: job.repoId,
      owner: job.owner,
      repo: job.repo,
      number: job.number,
      kind: job.kind,
      source: "web",
      verb: "stop",
      sender: session.login,
      args: { jobId: job.id },
    });
    ctx.deps.log.info({ jobId: job.id, login: session.login }, "stop requested on the job page");
    ctx.deps.wake();
  }
  // 303: the browser follows with a GET, so a reload does not post again.
  ctx.redirect(res, `/jobs/${job.id}?cancel=sent`, {}, 303);
}
