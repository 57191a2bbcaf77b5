import type { Job } from "../jobs/types.js";
import { INITIAL_STEPS } from "../store/job-store.js";
import type { PipelineDeps } from "./deps.js";
import { StatusPublisher } from "./status-publisher.js";
import { reportJob } from "./report-job.js";

/** A job may be started this many times before a crash loop is called a failure. */
export const MAX_ATTEMPTS = 3;

/**
 * Picks up a job whose controller died holding its lease. A job that was reporting finishes its
 * report from the stored result. A job that was starting or running loses its worker (destroyed:
 * the token it held cannot be revoked, as it was never stored, and dies within the hour) and goes
 * back to the queue, or fails after MAX_ATTEMPTS starts.
 */
export async function recoverJob(deps: PipelineDeps, job: Job): Promise<Job> {
  const log = deps.log.child({ jobId: job.id, deliveryId: job.deliveryId });
  if (job.state === "reporting" && job.result) {
    log.warn("recovering a job that was reporting when its controller stopped");
    const octokit = await deps.github.forInstallation(job.installationId);
    return reportJob(deps, octokit, new StatusPublisher(deps, octokit, job.id), job);
  }
  if (job.worker) {
    const backend = deps.backends.get(job.worker.backend);
    await backend?.destroy(job.worker);
  }
  if (job.attempts >= MAX_ATTEMPTS || job.state === "reporting") {
    log.error({ attempts: job.attempts }, "job failed after repeated controller restarts");
    const failed = await deps.store.transition(job.id, job.state, "failed", {
      worker: null,
      finishedAt: deps.now(),
      message: `the controller stopped ${job.attempts} times while running this job`,
    });
    const octokit = await deps.github.forInstallation(job.installationId);
    await new StatusPublisher(deps, octokit, job.id).flush();
    return failed;
  }
  log.warn({ attempts: job.attempts, was: job.state }, "requeueing a job whose controller stopped");
  return deps.store.transition(job.id, job.state, "queued", { worker: null, result: null, steps: INITIAL_STEPS }, "controller restarted; job requeued");
}
