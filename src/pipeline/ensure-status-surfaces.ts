import type { Job } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { renderStatusComment } from "../status/render-status-comment.js";
import { renderCheckRun } from "../status/render-check-run.js";
import { statusMarker } from "../status/status-marker.js";
import type { PipelineDeps } from "./deps.js";
import { costTexts } from "./cost-texts.js";

export const CHECK_NAME = "agent-work";

/**
 * Creates what a job shows itself through — the queued check run on the default branch head and
 * the status comment — unless the job already has them. Safe to call again after a crash: each id
 * is stored as soon as it exists, and a comment created just before a crash is found by its marker.
 */
export async function ensureStatusSurfaces(deps: PipelineDeps, octokit: GitHub, job: Job): Promise<Job> {
  const { owner, repo } = job;
  const facts = { ...(await costTexts(deps, job)), now: deps.now() };
  if (!job.baseSha) {
    const { data } = await octokit.rest.repos.getBranch({ owner, repo, branch: job.defaultBranch });
    job = await deps.store.update(job.id, { baseSha: data.commit.sha });
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
    if (job.attempts > 0) {
      // A retry after a crash: the comment may exist without its id having been saved.
      const { data } = await octokit.rest.issues.listComments({ owner, repo, issue_number: job.number, per_page: 100 });
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
