import type { Job } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { openPullRequest } from "../github/open-pull-request.js";
import type { PipelineDeps } from "./deps.js";
import type { StatusPublisher } from "./status-publisher.js";
import { CHECK_NAME } from "./ensure-status-surfaces.js";
import { markStep } from "../jobs/mark-step.js";
import { intendEffect } from "./intend-effect.js";
import { findCheckRun } from "../github/find-check-run.js";
import type { JobState } from "../jobs/state.js";
import type { NewOutboxEntry } from "../store/outbox-store.js";
import { describeOutcome } from "../status/describe-outcome.js";
import { deliverOutbox } from "./deliver-outbox.js";
import { renderAgentAnswer } from "../status/render-agent-answer.js";

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

/**
 * The order is what makes a crash anywhere in here harmless: every GitHub effect first, each
 * recorded as soon as it exists (the PR's number, the PR check run's id) or adopted when a retry
 * finds it (GitHub answers a second PR for the branch with 422; the check run is found by its
 * external id), then the final view published, and only then the job written finished. A
 * controller that dies before that last write finds the job still `reporting` and runs this again.
 */
export async function reportJob(deps: PipelineDeps, octokit: GitHub, publisher: StatusPublisher, job: Job): Promise<Job> {
  const result = job.result!;
  const { owner, repo } = job;
  // Updates the run queued must not land after the check run has moved to the PR.
  await publisher.idle();
  const now = deps.now();
  const finish = { finishedAt: now };
  let to: JobState;
  let patch: Partial<Job>;

  if (result.outcome === "timed_out") {
    to = "timed_out";
    patch = { ...finish, steps: markStep(job.steps, "pull request", "skipped", now) };
  } else if (result.outcome === "pushed" && result.branch && result.headSha) {
    if (!job.prNumber) {
      // On a pull request the commit went onto its own branch: the PR is already there.
      const pr = job.prHeadRef
        ? { number: job.number, url: `https://github.com/${owner}/${repo}/pull/${job.number}`, headSha: result.headSha }
        : await openPullRequest(octokit, pullRequestFor(job, result.branch));
      job = await deps.store.update(job.id, { prNumber: pr.number, prUrl: pr.url, headSha: pr.headSha });
    }
    to = "succeeded";
    patch = {
      ...finish,
      steps: markStep(job.steps, "pull request", "done", now, job.prHeadRef || result.continued ? `pushed to #${job.prNumber}` : `#${job.prNumber}`),
    };
  } else if (result.outcome === "patch") {
    // A fork's run: nothing could be pushed; the status comment carries the patch.
    to = "succeeded";
    patch = { ...finish, message: "the change is attached as a patch", steps: markStep(job.steps, "pull request", "skipped", now, "a patch, not a push") };
  } else if (result.outcome === "answered") {
    // A question: the answer is its own comment (an outbox row, written with the end below).
    to = "succeeded";
    patch = {
      ...finish,
      message: "the agent answered in a comment",
      steps: markStep(job.steps, "pull request", "skipped", now, "a question: answered in a comment"),
    };
  } else if (result.outcome === "no_changes") {
    to = "succeeded";
    patch = { ...finish, message: "the agent made no changes", steps: markStep(job.steps, "pull request", "skipped", now) };
  } else {
    // A sandbox limit is the reason people need to read, not the exit code it caused.
    const message =
      result.outcome === "agent_failed" && !result.limit
        ? `the agent exited with code ${result.agentExitCode ?? "?"}`
        : deps.redactor.redact(result.message || "the worker stopped without a result");
    to = "failed";
    patch = { ...finish, message, steps: markStep(job.steps, "pull request", "skipped", now) };
  }

  if (to === "succeeded" && job.prNumber && job.headSha) job = await movePrCheck(deps, octokit, publisher, { ...job, ...patch, state: to }, job.headSha);
  // The final view, then the write that says it is out (with the replies in the review's threads
  // a run asked for in a review gets: outbox rows, so they are posted once whoever dies when).
  await publisher.flush({ ...job, ...patch, state: to });
  const replies = [...answerComment(deps, { ...job, ...patch, state: to } as Job), ...reviewReplies(deps, { ...job, ...patch, state: to } as Job)];
  if (replies.length === 0) return deps.store.transition(job.id, "reporting", to, patch);
  const ended = await deps.store.transition(job.id, "reporting", to, patch, undefined, {
    effects: replies,
    deliverer: { owner: deps.owner, leaseMs: deps.config.leaseSeconds * 1000 },
  });
  await deliverOutbox(
    deps,
    replies.map((r) => r.key),
  );
  return ended;
}

/** An `/agent ask` job's answer, as a comment on the issue or PR that quotes the question. */
function answerComment(deps: PipelineDeps, final: Job): NewOutboxEntry[] {
  const answer = final.result?.outcome === "answered" ? final.result.answer : undefined;
  if (answer === undefined) return [];
  const question = (final.instructions ?? "")
    .slice(0, 1000)
    .split("\n")
    .map((l) => `> ${l}`)
    .join("\n");
  const sha = final.result?.baseSha ? ` at \`${final.result.baseSha.slice(0, 7)}\`` : "";
  const body = [
    `💬 @${final.requester} asked (agent-work job \`${final.id}\`):`,
    question,
    "",
    renderAgentAnswer(answer),
    "",
    `<sub>Written by an AI coding agent from the code${sha}; it changed and pushed nothing. Check it before you rely on it.</sub>`,
  ].join("\n");
  return [
    {
      key: `answer:${final.id}`,
      installationId: final.installationId,
      jobId: final.id,
      effect: { kind: "comment", owner: final.owner, repo: final.repo, issueNumber: final.number, body: deps.redactor.redact(body) },
    },
  ];
}

/** Threads answered at most, for a review with many inline comments. */
const MAX_REVIEW_REPLIES = 10;

/**
 * The answer in the review's threads: the inline comment's own thread, or for a review every
 * thread of its comments that went into the prompt. It says what happened and links the commit.
 */
function reviewReplies(deps: PipelineDeps, final: Job): NewOutboxEntry[] {
  const review = final.options.review;
  if (!review) return [];
  const fromReview = (final.context?.comments ?? []).filter((c) => c.path !== undefined && c.threadId !== undefined);
  const threads = review.threadId !== undefined ? [review.threadId] : [...new Set(fromReview.map((c) => c.threadId!))].slice(0, MAX_REVIEW_REPLIES);
  if (threads.length === 0) return [];
  const outcome = describeOutcome(final);
  const sha = final.result?.outcome === "pushed" ? final.headSha : null;
  const commit = sha ? `[\`${sha.slice(0, 7)}\`](https://github.com/${final.owner}/${final.repo}/pull/${final.number}/commits/${sha})` : null;
  const given = fromReview
    .slice(0, 10)
    .map((c) => `\`${(c.path ?? "").replace(/[^\w./@+-]/g, "_").slice(0, 120)}\`${c.line ? ` line ${c.line}` : ""} (@${c.author})`);
  const body = [
    commit
      ? `@${final.requester} agent-work job \`${final.id}\` pushed ${commit} to this pull request for this review.`
      : `@${final.requester} agent-work job \`${final.id}\`: ${outcome?.headline ?? final.state}`,
    ...(given.length
      ? [
          "",
          `Review comments in the agent's prompt: ${given.join(", ")}${fromReview.length > given.length ? ` and ${fromReview.length - given.length} more` : ""}.`,
        ]
      : []),
    ...((final.context?.droppedComments ?? 0) > 0
      ? ["", `Left out: ${final.context!.droppedComments} comment(s) by people without \`${deps.config.requiredPermission}\` access.`]
      : []),
  ].join("\n");
  return threads.map((commentId) => ({
    key: `review-reply:${final.id}:${commentId}`,
    installationId: final.installationId,
    jobId: final.id,
    effect: { kind: "review-reply", owner: final.owner, repo: final.repo, pullNumber: final.number, commentId, body: deps.redactor.redact(body) },
  }));
}

/**
 * GitHub ties a check run to one commit: the result's check goes on the PR's head, created
 * completed (once: recorded at once, or found by its external id on a retry), and the first one,
 * on the default branch, is completed `neutral` with a link.
 */
async function movePrCheck(deps: PipelineDeps, octokit: GitHub, publisher: StatusPublisher, final: Job, headSha: string): Promise<Job> {
  const { owner, repo } = final;
  const now = deps.now();
  let job = final;
  if (!job.prCheckRunId) {
    const retried = await intendEffect(deps, job.id, "pr-check-run");
    const found = retried ? await findCheckRun(octokit, { owner, repo, sha: headSha, name: CHECK_NAME, jobId: job.id }) : undefined;
    let id = found;
    if (!id) {
      const view = await publisher.currentCheckView(job);
      const { data } = await octokit.rest.checks.create({
        owner,
        repo,
        name: CHECK_NAME,
        head_sha: headSha,
        external_id: job.id,
        status: "completed",
        conclusion: view.conclusion ?? "success",
        completed_at: new Date(now).toISOString(),
        ...(deps.config.publicUrl ? { details_url: `${deps.config.publicUrl.replace(/\/$/, "")}/jobs/${job.id}` } : {}),
        output: view.output,
        actions: view.actions,
      });
      id = data.id;
    }
    const stored = await deps.store.update(job.id, { prCheckRunId: id });
    job = { ...job, prCheckRunId: stored.prCheckRunId };
  }
  if (job.checkRunId && job.checkRunId !== job.prCheckRunId) {
    await octokit.rest.checks.update({
      owner,
      repo,
      check_run_id: job.checkRunId,
      status: "completed",
      conclusion: "neutral",
      completed_at: new Date(now).toISOString(),
      output: { title: `Continued on pull request #${job.prNumber}`, summary: `The result of job \`${job.id}\` is on ${job.prUrl}.` },
      actions: [],
    });
  }
  return job;
}
