import type { Job } from "../jobs/types.js";
import { checkSenderPermission } from "../github/check-sender-permission.js";
import { checkPullRequestHead } from "../github/check-pull-request-head.js";
import { readRepoConfig } from "../github/read-repo-config.js";
import { parseRepoConfig, formatRepoConfigErrors } from "../config/repo-config.js";
import { isUniqueViolation } from "../store/job-store.js";
import type { GitHub } from "../github/types.js";
import type { PipelineDeps } from "./deps.js";
import { ensureStatusSurfaces } from "./ensure-status-surfaces.js";
import { resolveJobOptions } from "./resolve-job-options.js";
import { snapshotDiscussion } from "./snapshot-discussion.js";

/**
 * The first pass over a recorded trigger (label or `/agent run`), off the webhook's request path:
 * authorise the sender (fail closed), read and validate the repo config and the command's flags,
 * look at the pull request (same repository only, and never one whose head is the default or a
 * protected branch), snapshot the discussion, admit the job (one
 * active job per issue), then acknowledge with a 👀, the queued check run and the status comment.
 * A refusal is written first, then answered with one comment that quotes the command and says
 * why; nothing starts.
 */
export async function intakeJob(deps: PipelineDeps, job: Job): Promise<Job> {
  const log = deps.log.child({ jobId: job.id, deliveryId: job.deliveryId });
  const octokit = await deps.github.forInstallation(job.installationId);
  const { owner, repo } = job;

  const verdict = await checkSenderPermission(octokit, { owner, repo, username: job.requester }, deps.config.requiredPermission);
  if (!verdict.allowed) {
    log.info({ permission: verdict.permission }, "sender may not start agent work; refused");
    return reject(deps, octokit, job, verdict.reason);
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
    return reject(deps, octokit, job, "invalid repository config", `\n\n${formatRepoConfigErrors(parsed.errors)}`);
  }
  const resolved = resolveJobOptions(parsed.config, job.options, [...deps.backends.keys()]);
  if (!resolved.ok) return reject(deps, octokit, job, resolved.reason);
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
      return reject(deps, octokit, job, "this pull request comes from a fork; agent-work only works on branches of this repository, so the agent's token never meets code from outside it (`fork_pull_requests: patch` in `.github/agent-work.yml` allows a run with no secret that posts its change as a patch)");
    }
    if (fork) forkCloneUrl = pr.head.repo?.clone_url ?? null;
    if (fork && !forkCloneUrl) return reject(deps, octokit, job, "the fork of this pull request cannot be read (it may have been deleted)");
    if (pr.state !== "open") return reject(deps, octokit, job, "this pull request is closed");
    // A fork's head lives in the fork: nothing is pushed there, so only our own branches are checked.
    if (!fork) {
      const head = await checkPullRequestHead(octokit, { owner, repo, head: pr.head.ref, defaultBranches: [job.defaultBranch, pr.base.repo.default_branch] });
      if (!head.allowed) {
        log.info({ head: pr.head.ref }, "pull request head is the default or a protected branch; refused");
        return reject(deps, octokit, job, head.reason);
      }
    }
    prHeadRef = pr.head.ref;
    headSha = pr.head.sha;
  }

  const context = job.context ?? (await snapshotDiscussion(octokit, job, deps.config.requiredPermission));

  let admitted: Job;
  try {
    admitted = await deps.store.transition(job.id, "received", "queued", {
      config,
      priority: config.priority,
      backend: config.backend,
      options: { ...job.options, ...(resolved.machine ? { machine: resolved.machine } : {}), ...(forkCloneUrl ? { forkCloneUrl } : {}) },
      context,
      prHeadRef,
      ...(headSha ? { baseSha: headSha } : {}),
    });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    const active = await deps.store.activeFor(job.repoId, job.number);
    log.info({ activeJob: active?.id }, "a job is already active on this issue; refused");
    const where = active?.commentId ? ` (see the [status comment](https://github.com/${owner}/${repo}/issues/${job.number}#issuecomment-${active.commentId}))` : "";
    return reject(deps, octokit, job, `agent-work is already running on this ${job.kind === "pull_request" ? "pull request" : "issue"}: job \`${active?.id ?? "?"}\`${where}; \`/agent stop\` stops it`);
  }
  log.info({ backend: config.backend, maxMinutes: config.maxMinutes, comments: context.comments.length }, "job admitted");

  await acknowledge(octokit, job);
  return ensureStatusSurfaces(deps, octokit, admitted);
}

/** 👀 on the comment that asked, or on the issue for a label. */
export async function acknowledge(octokit: GitHub, target: { owner: string; repo: string; number: number; triggerCommentId: number | null }): Promise<void> {
  const { owner, repo } = target;
  if (target.triggerCommentId) {
    await octokit.rest.reactions.createForIssueComment({ owner, repo, comment_id: target.triggerCommentId, content: "eyes" });
  } else {
    await octokit.rest.reactions.createForIssue({ owner, repo, issue_number: target.number, content: "eyes" });
  }
}

/** The one reply to a refused trigger: the command quoted (if any), who, and why. */
export function refusalText(job: Pick<Job, "requester" | "options">, reason: string): string {
  const quote = job.options.commandLine ? `> ${job.options.commandLine.replace(/\n/g, " ")}\n\n` : "";
  const why = reason.startsWith("\n") ? reason : ` ${reason}.`;
  return `${quote}@${job.requester} agent-work did not start:${why}`;
}

async function reject(deps: PipelineDeps, octokit: GitHub, job: Job, reason: string, details?: string): Promise<Job> {
  const rejected = await deps.store.transition(job.id, "received", "rejected", { message: reason.trim().split("\n")[0]!, finishedAt: deps.now() });
  const body = refusalText(job, details ?? reason);
  await octokit.rest.issues.createComment({ owner: job.owner, repo: job.repo, issue_number: job.number, body: deps.redactor.redact(body) });
  return rejected;
}
