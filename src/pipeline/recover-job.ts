import type { Job } from "../jobs/types.js";
import type { Backend, Worker } from "../backends/types.js";
import { IncompleteListError } from "../backends/incomplete-list-error.js";
import { INITIAL_STEPS } from "../store/job-rows.js";
import type { PipelineDeps } from "./deps.js";
import { StatusPublisher } from "./status-publisher.js";
import { reportJob } from "./report-job.js";
import { revokeKeptWorkerToken } from "./worker-token-at-rest.js";
import { billWorker } from "./bill-worker.js";

/** A job may be started this many times before a crash loop is called a failure. */
export const MAX_ATTEMPTS = 3;

/**
 * Picks up a job whose controller died holding its lease. First the token that controller handed
 * out is revoked (opened from its sealed copy in the store): a worker that outlived its controller
 * may still hold it. A job that was reporting then finishes its report from the stored result
 * (every step of which is safe to repeat). A job that was starting or running loses its worker —
 * the recorded one, and any the backend holds under the job's id (a create that finished after
 * its controller died before recording it) — and goes back to the queue, or ends: cancelled if
 * someone asked for that, failed after MAX_ATTEMPTS starts.
 */
export async function recoverJob(deps: PipelineDeps, job: Job): Promise<Job> {
  const log = deps.log.child({ jobId: job.id, deliveryId: job.deliveryId });
  await revokeKeptWorkerToken(deps, job.id, log);
  if (job.state === "reporting" && job.result) {
    log.warn("recovering a job that was reporting when its controller stopped");
    const octokit = await deps.github.forInstallation(job.installationId);
    return reportJob(deps, octokit, new StatusPublisher(deps, octokit, job.id), job);
  }
  await destroyWorkersOf(deps, job);
  const end = job.cancelRequestedBy
    ? { to: "cancelled" as const, message: `stopped by @${job.cancelRequestedBy}` }
    : job.attempts >= MAX_ATTEMPTS || job.state === "reporting"
      ? { to: "failed" as const, message: `the controller stopped ${job.attempts} times while running this job` }
      : null;
  if (end) {
    log.error({ attempts: job.attempts, to: end.to }, "job ended after its controller stopped");
    const now = deps.now();
    const steps = job.steps.map((st) => (st.status === "running" ? { ...st, status: "failed" as const, finishedAt: now, detail: st.detail ?? end.to } : st));
    const patch = { worker: null, finishedAt: now, message: end.message, steps };
    // Its bill is every worker it had (each billed as recovery destroyed it).
    if (await deps.ledger.get(job.id)) await deps.ledger.finalize(job.id);
    // Published first, then written: dying in between leaves the job to be recovered again.
    const octokit = await deps.github.forInstallation(job.installationId);
    await new StatusPublisher(deps, octokit, job.id).flush({ ...job, ...patch, state: end.to });
    return deps.store.transition(job.id, job.state, end.to, patch);
  }
  log.warn({ attempts: job.attempts, was: job.state }, "requeueing a job whose controller stopped");
  const requeued = await deps.store.transition(
    job.id,
    job.state,
    "queued",
    { worker: null, result: null, steps: INITIAL_STEPS },
    "controller restarted; job requeued",
  );
  // GitHub showed the job as the dead controller left it (a worker starting, a step running) until
  // its next start: shown queued again now. Not shown is not lost: its next change is written.
  try {
    const octokit = await deps.github.forInstallation(job.installationId);
    await new StatusPublisher(deps, octokit, job.id).flush(requeued);
  } catch (err) {
    log.warn({ err }, "could not show the requeued job on GitHub; its next change will");
  }
  return requeued;
}

/**
 * Destroys the job's workers, and bills each one until now: it lived on after its controller died,
 * and the start that follows gets a worker (and a bill) of its own.
 */
async function destroyWorkersOf(deps: PipelineDeps, job: Job): Promise<void> {
  const backend = deps.backends.get(job.worker?.backend ?? job.backend);
  if (!backend) return;
  const workers: Worker[] = job.worker ? [job.worker] : [];
  // Only while provisioning can a worker exist that was never recorded: running means recorded.
  if (job.state === "provisioning") for (const w of await listedFor(backend, job.id)) if (!workers.some((k) => k.id === w.id)) workers.push(w);
  for (const worker of workers) {
    await backend.destroy(worker);
    await billWorker(deps, job, worker, deps.now());
  }
}

async function listedFor(backend: Backend, jobId: string): Promise<Worker[]> {
  try {
    return (await backend.list()).filter((w) => w.jobId === jobId);
  } catch (err) {
    // What it did see is still worth destroying; the reaper finds the rest.
    if (err instanceof IncompleteListError) return err.workers.filter((w) => w.jobId === jobId);
    throw err;
  }
}
