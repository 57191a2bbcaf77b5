import type { Logger } from "pino";
import type { Job } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { checkSenderPermission } from "../github/check-sender-permission.js";
import type { PipelineDeps } from "./deps.js";

/**
 * Asked again at start, not only at intake: a job may wait in the queue (or be requeued after a
 * crash) long after it was admitted, and someone whose write access was taken away meanwhile
 * must not get a worker, a token or a bill. Same rule as intake, failing closed the same way.
 * Returns why the job may not start, or null.
 */
export async function checkRequesterAgain(deps: PipelineDeps, octokit: GitHub, job: Job, log: Logger): Promise<string | null> {
  const verdict = await checkSenderPermission(octokit, { owner: job.owner, repo: job.repo, username: job.requester }, deps.config.requiredPermission);
  if (verdict.allowed) return null;
  log.warn({ permission: verdict.permission, requester: job.requester }, "the requester may no longer start agent work; nothing started");
  return `the requester's access was checked again at start: ${verdict.reason}`;
}
