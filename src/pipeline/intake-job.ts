import type { Job } from "../jobs/types.js";
import { checkSenderPermission } from "../github/check-sender-permission.js";
import { readRepoConfig } from "../github/read-repo-config.js";
import { parseRepoConfig, formatRepoConfigErrors, REPO_CONFIG_PATH } from "../config/repo-config.js";
import { isUniqueViolation } from "../store/job-store.js";
import type { GitHub } from "../github/types.js";
import type { PipelineDeps } from "./deps.js";
import { ensureStatusSurfaces } from "./ensure-status-surfaces.js";

/**
 * The first pass over a recorded delivery, off the webhook's request path: authorise the sender
 * (fail closed), read and validate the repo config, admit the job (one active job per issue),
 * then acknowledge on GitHub with a 👀, the queued check run and the status comment.
 * A refusal is written first, then answered with one short comment; nothing starts.
 */
export async function intakeJob(deps: PipelineDeps, job: Job): Promise<Job> {
  const log = deps.log.child({ jobId: job.id, deliveryId: job.deliveryId });
  const octokit = await deps.github.forInstallation(job.installationId);
  const { owner, repo } = job;

  const verdict = await checkSenderPermission(octokit, { owner, repo, username: job.requester }, deps.config.requiredPermission);
  if (!verdict.allowed) {
    log.info({ permission: verdict.permission }, "sender may not start agent work; refused");
    return reject(deps, octokit, job, verdict.reason, `@${job.requester} agent-work did not start: ${verdict.reason}.`);
  }

  const read = await readRepoConfig(octokit, { owner, repo });
  const parsed = read.ok
    ? parseRepoConfig(read.raw ?? {}, {
        defaultAgent: deps.config.defaultAgent,
        defaultMaxMinutes: deps.config.defaultMaxMinutes,
        maxMinutesCeiling: deps.config.maxMinutesCeiling,
      })
    : { ok: false as const, errors: [{ key: "(file)", message: read.error }] };
  if (!parsed.ok) {
    log.info({ errors: parsed.errors }, "repository config is invalid; refused");
    const body = `@${job.requester} agent-work did not start.\n\n${formatRepoConfigErrors(parsed.errors)}`;
    return reject(deps, octokit, job, `invalid ${REPO_CONFIG_PATH}`, body);
  }
  const config = parsed.config;
  if (!deps.backends.has(config.backend)) {
    const known = [...deps.backends.keys()].join(", ");
    return reject(deps, octokit, job, `backend ${config.backend} is not enabled`, `@${job.requester} agent-work did not start: the backend \`${config.backend}\` named in \`${REPO_CONFIG_PATH}\` is not enabled on this controller (enabled: ${known}).`);
  }

  let admitted: Job;
  try {
    admitted = await deps.store.transition(job.id, "received", "queued", { config, priority: config.priority, backend: config.backend });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    const active = await deps.store.activeFor(job.repoId, job.number);
    log.info({ activeJob: active?.id }, "a job is already active on this issue; refused");
    const where = active?.commentId ? ` (see the [status comment](https://github.com/${owner}/${repo}/issues/${job.number}#issuecomment-${active.commentId}))` : "";
    return reject(deps, octokit, job, "already running", `@${job.requester} agent-work is already running on this ${job.kind === "pull_request" ? "pull request" : "issue"}: job \`${active?.id ?? "?"}\`${where}. No new job was started.`);
  }
  log.info({ backend: config.backend, maxMinutes: config.maxMinutes }, "job admitted");

  await octokit.rest.reactions.createForIssue({ owner, repo, issue_number: job.number, content: "eyes" });
  return ensureStatusSurfaces(deps, octokit, admitted);
}

async function reject(deps: PipelineDeps, octokit: GitHub, job: Job, reason: string, reply: string): Promise<Job> {
  const rejected = await deps.store.transition(job.id, "received", "rejected", { message: reason, finishedAt: deps.now() });
  await octokit.rest.issues.createComment({ owner: job.owner, repo: job.repo, issue_number: job.number, body: deps.redactor.redact(reply) });
  return rejected;
}
