import type { Job } from "../jobs/types.js";
import type { JobSpec, Worker } from "../backends/types.js";
import type { PipelineDeps } from "./deps.js";

/** The agent step gets the job's limit; the worker as a whole a little more for clone and push. */
export function jobLimits(deps: PipelineDeps, job: Job): { agentSeconds: number; hardSeconds: number } {
  const agentSeconds = (job.config?.maxMinutes ?? deps.config.defaultMaxMinutes) * deps.secondsPerMinute;
  const hardSeconds = agentSeconds + Math.max(10, 2 * deps.secondsPerMinute);
  return { agentSeconds, hardSeconds };
}

/**
 * What the backend is asked to make for the job: a worker living at most `maxSeconds`, on a host
 * carrying the labels the job asks for (a routing rule's or the repository's `ssh_labels`), in
 * place of `replacing` when the run lost its worker.
 */
export function workerSpec(job: Job, maxSeconds: number, replacing?: Worker): JobSpec {
  return {
    jobId: job.id,
    repoFullName: `${job.owner}/${job.repo}`,
    maxSeconds,
    ...(replacing ? { replacing } : {}),
    ...(job.options.sshLabels?.length ? { hostLabels: job.options.sshLabels } : {}),
  };
}
