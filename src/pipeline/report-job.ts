import type { Job } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { openPullRequest } from "../github/open-pull-request.js";
import type { PipelineDeps } from "./deps.js";
import type { StatusPublisher } from "./status-publisher.js";
import { CHECK_NAME } from "./ensure-status-surfaces.js";
import { markStep } from "./run-job.js";

/**
 * From `reporting` to the end: open (or adopt) the draft PR with the app's own token, move the
 * check run onto the PR's head commit, and write the final status. Every call here is safe to
 * repeat, so a controller that died while reporting can run this again from the stored result.
 */
function pullRequestFor(job: Job, branch: string) {
  return {
    owner: job.owner,
    repo: job.repo,
    head: branch,
    base: job.defaultBranch,
    title: job.title,
    body: [
      `Closes #${job.number}`,
      "",
      `Written by an AI coding agent (\`${job.config?.agent ?? "agent"}\`) for @${job.requester}, agent-work job \`${job.id}\`.`,
      "Review it like any contribution from someone you do not know yet.",
    ].join("\n"),
    draft: job.config?.draft ?? true,
  };
}

export async function reportJob(deps: PipelineDeps, octokit: GitHub, publisher: StatusPublisher, job: Job): Promise<Job> {
  const result = job.result!;
  const { owner, repo } = job;
  const now = deps.now();
  const finish = { finishedAt: now };

  if (result.outcome === "timed_out") {
    job = await deps.store.transition(job.id, "reporting", "timed_out", { ...finish, steps: markStep(job.steps, "pull request", "skipped", now) });
  } else if (result.outcome === "pushed" && result.branch && result.headSha) {
    // On a pull request the commit went onto its own branch: the PR is already there.
    const pr = job.prHeadRef
      ? { number: job.number, url: `https://github.com/${owner}/${repo}/pull/${job.number}`, headSha: result.headSha }
      : await openPullRequest(octokit, pullRequestFor(job, result.branch));
    job = await deps.store.transition(job.id, "reporting", "succeeded", {
      ...finish,
      prNumber: pr.number,
      prUrl: pr.url,
      headSha: pr.headSha,
      steps: markStep(job.steps, "pull request", "done", now, job.prHeadRef ? `pushed to #${pr.number}` : `#${pr.number}`),
    });
    if (!job.prCheckRunId) {
      const view = await publisher.currentCheckView();
      const { data } = await octokit.rest.checks.create({
        owner,
        repo,
        name: CHECK_NAME,
        head_sha: pr.headSha,
        external_id: job.id,
        status: "completed",
        conclusion: view.conclusion ?? "success",
        completed_at: new Date(now).toISOString(),
        ...(deps.config.publicUrl ? { details_url: `${deps.config.publicUrl.replace(/\/$/, "")}/jobs/${job.id}` } : {}),
        output: view.output,
        actions: view.actions,
      });
      job = await deps.store.update(job.id, { prCheckRunId: data.id });
    }
    if (job.checkRunId) {
      await octokit.rest.checks.update({
        owner,
        repo,
        check_run_id: job.checkRunId,
        status: "completed",
        conclusion: "neutral",
        completed_at: new Date(now).toISOString(),
        output: { title: `Continued on pull request #${pr.number}`, summary: `The result of job \`${job.id}\` is on ${pr.url}.` },
        actions: [],
      });
    }
  } else if (result.outcome === "no_changes") {
    job = await deps.store.transition(job.id, "reporting", "succeeded", {
      ...finish,
      message: "the agent made no changes",
      steps: markStep(job.steps, "pull request", "skipped", now),
    });
  } else {
    // A sandbox limit is the reason people need to read, not the exit code it caused.
    const message =
      result.outcome === "agent_failed" && !result.limit
        ? `the agent exited with code ${result.agentExitCode ?? "?"}`
        : deps.redactor.redact(result.message || "the worker stopped without a result");
    job = await deps.store.transition(job.id, "reporting", "failed", { ...finish, message, steps: markStep(job.steps, "pull request", "skipped", now) });
  }
  await publisher.flush();
  return job;
}
