import type { Job } from "../jobs/types.js";
import { checkSenderPermission } from "../github/check-sender-permission.js";
import { checkPullRequestHead } from "../github/check-pull-request-head.js";
import { readRepoConfig } from "../github/read-repo-config.js";
import { parseRepoConfig, formatRepoConfigErrors } from "../config/repo-config.js";
import { isUniqueViolation, StaleStateError } from "../store/job-store.js";
import type { PipelineDeps } from "./deps.js";
import { ensureStatusSurfaces } from "./ensure-status-surfaces.js";
import { resolveJobOptions } from "./resolve-job-options.js";
import { snapshotDiscussion } from "./snapshot-discussion.js";
import { snapshotReview } from "./snapshot-review.js";
import { deliverOutbox } from "./deliver-outbox.js";
import { withStep } from "../jobs/mark-step.js";
import { addToOutbox, type NewOutboxEntry, type OutboxDeliverer } from "../store/outbox-store.js";

/**
 * The first pass over a recorded trigger (label or `/agent run`), off the webhook's request path:
 * authorise the sender (fail closed), read and validate the repo config and the command's flags,
 * look at the pull request (same repository only, and never one whose head is the default or a
 * protected branch), snapshot the discussion, admit the job (one
 * active job per issue), then acknowledge with a 👀, the queued check run and the status comment.
 * A refusal is answered with one comment that quotes the command and says why; nothing starts.
 * The 👀 and the refusal are outbox rows written with the state change (the admission, the
 * rejection), so a process that dies right after it still leaves them to be delivered, once.
 */
export async function intakeJob(deps: PipelineDeps, job: Job): Promise<Job> {
  const log = deps.log.child({ jobId: job.id, deliveryId: job.deliveryId });
  // Waiting for the issue's active job: nothing to ask GitHub until that one has ended.
  if (job.options.waitingFor && (await deps.store.activeFor(job.repoId, job.number))) return job;
  const octokit = await deps.github.forInstallation(job.installationId);
  const { owner, repo } = job;

  const verdict = await checkSenderPermission(octokit, { owner, repo, username: job.requester }, deps.config.requiredPermission);
  if (!verdict.allowed) {
    log.info({ permission: verdict.permission }, "sender may not start agent work; refused");
    return reject(deps, job, verdict.reason);
  }

  const read = await readRepoConfig(octokit, { owner, repo });
  const parsed = read.ok
    ? parseRepoConfig(read.raw ?? {}, {
        defaultAgent: deps.config.defaultAgent,
        defaultMaxMinutes: deps.config.defaultMaxMinutes,
        maxMinutesCeiling: deps.config.maxMinutesCeiling,
        sandboxCeilings: deps.config.sandboxCeilings,
      })
    : { ok: false as const, errors: [{ key: "(file)", message: read.error }] };
  if (!parsed.ok) {
    log.info({ errors: parsed.errors }, "repository config is invalid; refused");
    return reject(deps, job, "invalid repository config", `\n\n${formatRepoConfigErrors(parsed.errors)}`);
  }
  const resolved = resolveJobOptions(parsed.config, job.options, [...deps.backends.keys()], {
    rules: deps.config.routingRules ?? [],
    facts: { repoFullName: `${owner}/${repo}`, labels: job.options.labels ?? [] },
  });
  if (!resolved.ok) return reject(deps, job, resolved.reason);
  const config = resolved.config;

  let prHeadRef: string | null = null;
  let headSha: string | null = null;
  let forkCloneUrl: string | null = null;
  if (job.kind === "pull_request") {
    const { data: pr } = await octokit.rest.pulls.get({ owner, repo, pull_number: job.number });
    const fork = pr.head.repo?.full_name !== pr.base.repo.full_name;
    if (fork && config.forkPullRequests !== "patch") {
      // A fork's branch cannot be pushed with a token scoped to this repository, and its files
      // were written by someone without write access here.
      return reject(
        deps,
        job,
        "this pull request comes from a fork; agent-work only works on branches of this repository, so the agent's token never meets code from outside it (`fork_pull_requests: patch` in `.github/agent-work.yml` allows a run with no secret that posts its change as a patch)",
      );
    }
    if (fork) forkCloneUrl = pr.head.repo?.clone_url ?? null;
    if (fork && !forkCloneUrl) return reject(deps, job, "the fork of this pull request cannot be read (it may have been deleted)");
    if (pr.state !== "open") return reject(deps, job, "this pull request is closed");
    // A fork's head lives in the fork: nothing is pushed there, so only our own branches are checked.
    if (!fork) {
      const head = await checkPullRequestHead(octokit, { owner, repo, head: pr.head.ref, defaultBranches: [job.defaultBranch, pr.base.repo.default_branch] });
      if (!head.allowed) {
        log.info({ head: pr.head.ref }, "pull request head is the default or a protected branch; refused");
        return reject(deps, job, head.reason);
      }
    }
    prHeadRef = pr.head.ref;
    headSha = pr.head.sha;
  }

  let context = job.context;
  if (!context) {
    context = await snapshotDiscussion(octokit, job, deps.config.requiredPermission);
    // Asked for in a review: its comments, with their place in the diff, join the discussion.
    if (job.options.review) {
      const review = await snapshotReview(octokit, job, deps.config.requiredPermission);
      context = { comments: [...context.comments, ...review.comments], droppedComments: context.droppedComments + review.dropped };
    }
  }

  let admitted: Job;
  try {
    admitted = await deps.store.transition(
      job.id,
      "received",
      "queued",
      {
        config,
        // A repository with setup commands shows them as a step of their own from the start.
        ...(config.setup?.length ? { steps: withStep(job.steps, "setup", "agent") } : {}),
        priority: config.priority,
        backend: config.backend,
        options: {
          ...withoutWait(job.options),
          ...(resolved.machine ? { machine: resolved.machine } : {}),
          ...(forkCloneUrl ? { forkCloneUrl } : {}),
          ...(resolved.sshLabels ? { sshLabels: resolved.sshLabels } : {}),
          ...(resolved.rule ? { route: `runs on \`${config.backend}\`, picked by ${resolved.rule}` } : {}),
        },
        context,
        prHeadRef,
        ...(headSha ? { baseSha: headSha } : {}),
      },
      undefined,
      { effects: [acknowledgement(job)], deliverer: deliverer(deps) },
    );
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    const active = await deps.store.activeFor(job.repoId, job.number);
    if (!active) {
      // It ended between the admission and this look: the next pass admits this job.
      log.info("the issue's active job ended meanwhile; taken in again on the next pass");
      return job;
    }
    return waitBehind(deps, job, active, context);
  }
  log.info(
    { backend: config.backend, ...(resolved.rule ? { rule: resolved.rule } : {}), maxMinutes: config.maxMinutes, comments: context.comments.length },
    "job admitted",
  );

  await deps.onStep?.("admitted", admitted);
  await deliverOutbox(deps, [acknowledgement(job).key]);
  return ensureStatusSurfaces(deps, octokit, admitted);
}

/**
 * A request while a job is active on the issue waits instead of being refused: it keeps the
 * issue's one waiting slot (the newest request wins it: an older waiting one is rejected as
 * superseded, and an older request that arrives late loses to the newer one), and says so in a
 * comment. It stays `received`: intake passes look at it again, without a GitHub call while the
 * active job lasts, and admit it as usual (permission, config and all) once the issue is free.
 */
async function waitBehind(deps: PipelineDeps, job: Job, active: Job, context: Job["context"]): Promise<Job> {
  const log = deps.log.child({ jobId: job.id, deliveryId: job.deliveryId });
  const noun = job.kind === "pull_request" ? "pull request" : "issue";
  const waiting = (await deps.store.receivedFor(job.repoId, job.number)).filter((j) => j.id !== job.id && j.options.waitingFor);
  const newer = waiting.find((j) => j.createdAt > job.createdAt || (j.createdAt === job.createdAt && j.id > job.id));
  if (newer)
    return reject(deps, job, `a newer request on this ${noun} (job \`${newer.id}\`) is already waiting for job \`${active.id}\` to end, and takes its place`);
  const superseded: string[] = [];
  for (const older of waiting) {
    try {
      await deps.store.transition(older.id, "received", "rejected", { message: `superseded by job ${job.id}, a newer request`, finishedAt: deps.now() });
      superseded.push(older.id);
    } catch (err) {
      if (!(err instanceof StaleStateError)) throw err;
    }
  }
  const where = active.commentId ? ` ([status](https://github.com/${job.owner}/${job.repo}/issues/${job.number}#issuecomment-${active.commentId}))` : "";
  const quote = job.options.commandLine ? `> ${job.options.commandLine.replace(/\n/g, " ")}\n\n` : "";
  const notice: NewOutboxEntry = {
    key: `waiting:${job.id}`,
    installationId: job.installationId,
    jobId: job.id,
    effect: {
      kind: "comment",
      owner: job.owner,
      repo: job.repo,
      issueNumber: job.number,
      body: deps.redactor.redact(
        `${quote}⏳ @${job.requester} agent-work is busy on this ${noun} with job \`${active.id}\`${where}. This request waits as job \`${job.id}\` and starts when that one ends` +
          `${superseded.length ? `; it takes the place of job ${superseded.map((id) => `\`${id}\``).join(", ")}, which waited before it` : ""}. ` +
          "A newer request would take its place; `/agent stop` stops the running job and this one.",
      ),
    },
  };
  // The comment's row first: a process that dies before the job is marked waiting takes it in
  // again, finds the row there (same key), and posts nothing twice.
  await addToOutbox(deps.store.db, [notice], deps.now(), deliverer(deps));
  const waited = await deps.store.update(job.id, { options: { ...job.options, waitingFor: active.id }, ...(context ? { context } : {}) });
  log.info({ activeJob: active.id, superseded }, "a job is active on this issue; this one waits for it");
  await deliverOutbox(deps, [notice.key]);
  return waited;
}

function withoutWait(options: Job["options"]): Job["options"] {
  const { waitingFor: _done, ...rest } = options;
  return rest;
}

/** This process delivers what it just wrote; the sweep takes it only if this process dies first. */
function deliverer(deps: PipelineDeps): OutboxDeliverer {
  return { owner: deps.owner, leaseMs: deps.config.leaseSeconds * 1000 };
}

/** 👀 on the comment (or review comment) that asked, or on the issue for a label or a review. */
function acknowledgement(job: Job): NewOutboxEntry {
  return {
    key: `eyes:${job.id}`,
    installationId: job.installationId,
    jobId: job.id,
    effect: {
      kind: "reaction",
      owner: job.owner,
      repo: job.repo,
      issueNumber: job.number,
      commentId: job.triggerCommentId,
      ...(job.options.review?.commentId ? { reviewCommentId: job.options.review.commentId } : {}),
    },
  };
}

/** The one reply to a refused trigger: the command quoted (if any), who, and why. */
export function refusalText(job: Pick<Job, "requester" | "options">, reason: string): string {
  const quote = job.options.commandLine ? `> ${job.options.commandLine.replace(/\n/g, " ")}\n\n` : "";
  const why = reason.startsWith("\n") ? reason : ` ${reason}.`;
  return `${quote}@${job.requester} agent-work did not start:${why}`;
}

async function reject(deps: PipelineDeps, job: Job, reason: string, details?: string): Promise<Job> {
  const refusal: NewOutboxEntry = {
    key: `refusal:${job.id}`,
    installationId: job.installationId,
    jobId: job.id,
    effect: { kind: "comment", owner: job.owner, repo: job.repo, issueNumber: job.number, body: deps.redactor.redact(refusalText(job, details ?? reason)) },
  };
  const rejected = await deps.store.transition(job.id, "received", "rejected", { message: reason.trim().split("\n")[0]!, finishedAt: deps.now() }, undefined, {
    effects: [refusal],
    deliverer: deliverer(deps),
  });
  await deps.onStep?.("refused", rejected);
  await deliverOutbox(deps, [refusal.key]);
  return rejected;
}
