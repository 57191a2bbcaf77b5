import type { Job } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { renderStatusComment } from "../status/render-status-comment.js";
import { renderCheckRun } from "../status/render-check-run.js";
import { statusMarker } from "../status/status-marker.js";
import type { PipelineDeps } from "./deps.js";
import { costTexts } from "./cost-texts.js";
import { intendEffect } from "./intend-effect.js";
import { findCheckRun } from "../github/find-check-run.js";

export const CHECK_NAME = "agent-work";

/**
 * Creates what a job shows itself through — the queued check run on the default branch head and
 * the status comment — unless the job already has them. Safe to call again after a crash: each id
 * is stored as soon as it exists, and the intent to create is written before asking GitHub, so a
 * retry that finds an intent without an id looks first: the check run by its external id (the job
 * id), the comment by its hidden marker.
 */
export async function ensureStatusSurfaces(deps: PipelineDeps, octokit: GitHub, job: Job): Promise<Job> {
  const { owner, repo } = job;
  const facts = { ...(await costTexts(deps, job)), now: deps.now() };
  if (!job.baseSha) {
    const { data } = await octokit.rest.repos.getBranch({ owner, repo, branch: job.defaultBranch });
    job = await deps.store.update(job.id, { baseSha: data.commit.sha });
  }
  if (!job.checkRunId) {
    const retried = await intendEffect(deps, job.id, "check-run");
    const found = retried ? await findCheckRun(octokit, { owner, repo, sha: job.baseSha!, name: CHECK_NAME, jobId: job.id }) : undefined;
    job = found ? await deps.store.update(job.id, { checkRunId: found }) : job;
  }
  if (!job.checkRunId) {
    const view = renderCheckRun(job, { ...facts, logTail: [] });
    const { data } = await octokit.rest.checks.create({
      owner,
      repo,
      name: CHECK_NAME,
      head_sha: job.baseSha!,
      external_id: job.id,
      status: "queued",
      ...(deps.config.publicUrl ? { details_url: `${deps.config.publicUrl.replace(/\/$/, "")}/jobs/${job.id}` } : {}),
      output: { title: view.output.title, summary: deps.redactor.redact(view.output.summary) },
      actions: view.actions,
    });
    job = await deps.store.update(job.id, { checkRunId: data.id });
  }
  if (!job.commentId) {
    let commentId: number | undefined;
    if (await intendEffect(deps, job.id, "status-comment")) {
      // Only comments written since the job began can be its own (less ten minutes for clock skew).
      const since = new Date(job.createdAt - 600_000).toISOString();
      const { data } = await octokit.rest.issues.listComments({ owner, repo, issue_number: job.number, since, per_page: 100 });
      commentId = data.find((c) => c.body?.includes(statusMarker(job.id)))?.id;
    }
    if (!commentId) {
      const body = deps.redactor.redact(renderStatusComment(job, facts));
      const { data } = await octokit.rest.issues.createComment({ owner, repo, issue_number: job.number, body });
      commentId = data.id;
    }
    job = await deps.store.update(job.id, { commentId });
  }
  return job;
}
