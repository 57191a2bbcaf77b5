import type { RunResult } from "../backends/types.js";
import { isTerminal } from "../jobs/state.js";
import { INITIAL_STEPS } from "../store/job-rows.js";
import { LeaseLostError } from "../store/job-store.js";
import type { Job } from "../jobs/types.js";
import { cancelledBy } from "./cancel-request.js";
import { handedBack } from "./hand-back.js";
import type { JobRun } from "./job-run.js";
import { reportJob } from "./report-job.js";
import type { RunStops } from "./run-worker.js";
import { tearDownRun } from "./tear-down-run.js";

/**
 * Back to the queue after a shutdown stopped the run (worker destroyed, token revoked: torn
 * down). The start is not counted against the job's attempts: nothing went wrong with it.
 */
export async function handBackToQueue(run: JobRun): Promise<Job> {
  const { deps, log } = run;
  const fresh = await deps.store.getOrThrow(run.job.id);
  if (fresh.state === "provisioning" || fresh.state === "running") {
    run.job = await deps.store.transition(
      run.job.id,
      fresh.state,
      "queued",
      { worker: null, result: null, steps: INITIAL_STEPS, attempts: Math.max(0, fresh.attempts - 1) },
      "controller shutting down; job handed back to the queue",
    );
    run.state = "queued";
    log.info("job handed back to the queue");
  } else {
    run.job = fresh;
  }
  await run.publisher.flush().catch((e) => log.warn({ err: e }, "status update failed"));
  return run.job;
}

/** Stopped by a person (`/agent stop`) while the worker ran: cancelled, with what the worker did. */
export async function endCancelled(run: JobRun, result: RunResult, by: string): Promise<Job> {
  const { deps } = run;
  run.job = await deps.store.transition(run.job.id, "running", "cancelled", {
    result,
    computeSeconds: result.computeSeconds,
    finishedAt: deps.now(),
    message: `stopped by @${by}`,
  });
  run.state = "cancelled";
  await run.publisher.flush();
  return run.job;
}

/**
 * The worker's result, judged against what stopped it (the job budget, the deadline), is stored
 * and reported: the pull request, the answer, or why there is none.
 */
export async function reportResult(run: JobRun, result: RunResult, stops: RunStops): Promise<Job> {
  const { deps } = run;
  // A run the budget stopped, or whose agent stopped itself at its budget, fails with the figures.
  if (!run.budgetStop && result.outcome !== "pushed" && result.outcome !== "no_changes") stops.checkBudget();
  if (run.budgetStop && result.outcome !== "pushed") result = { ...result, outcome: "error", message: run.budgetStop };
  const timedOut = !run.budgetStop && (result.outcome === "timed_out" || (result.aborted && stops.deadline.aborted));
  await run.move("reporting", {
    // Stored before reporting starts, so a controller that dies while reporting can finish it.
    result: timedOut ? { ...result, outcome: "timed_out" } : result,
    headSha: result.headSha ?? null,
    computeSeconds: result.computeSeconds,
    ...(timedOut ? { message: `the agent ran past the ${run.config.maxMinutes}-minute limit and was stopped` } : {}),
  });
  await deps.onStep?.("reporting", run.job);
  run.job = await reportJob(deps, run.octokit, run.publisher, run.job);
  run.state = run.job.state;
  return run.job;
}

/**
 * A step threw: the job fails (or is cancelled, if a person stopped it while the worker was
 * being made), torn down and shown; unless the run no longer holds the job or is stopping for a
 * shutdown.
 */
export async function endOnError(run: JobRun, err: unknown): Promise<Job> {
  const { deps, log, signal } = run;
  if (err instanceof LeaseLostError || signal.reason instanceof LeaseLostError) {
    // Someone else holds the job now: nothing of this run may be written or torn down.
    log.error({ err }, "stopped: the lease on this job was taken over");
    return run.job;
  }
  if (handedBack(signal)) {
    log.info({ err }, "stopped while starting, for a shutdown");
    await tearDownRun(run).catch((e) => log.error({ err: e }, "teardown failed"));
    return handBackToQueue(run);
  }
  log.error({ err }, "job failed");
  const message = deps.redactor.redact(err instanceof Error ? err.message : String(err));
  const fresh = await deps.store.getOrThrow(run.job.id);
  if (!isTerminal(fresh.state)) {
    // Stopped by a person while the worker was being made: cancelled, not failed.
    const by = cancelledBy(signal);
    run.job = await deps.store.transition(fresh.id, fresh.state, by ? "cancelled" : "failed", {
      message: by ? `stopped by @${by}` : message,
      finishedAt: deps.now(),
    });
    run.state = run.job.state;
  } else {
    run.job = fresh;
  }
  await tearDownRun(run).catch((e) => log.error({ err: e }, "teardown failed"));
  await run.publisher.flush().catch((e) => log.warn({ err: e }, "final status update failed"));
  return run.job;
}

/** On every path out: the status stops updating, the job's log is written, the run torn down, its duration counted. */
export async function closeRun(run: JobRun): Promise<void> {
  const { deps, log } = run;
  run.publisher.stop();
  await deps.logs.flush().catch((err) => log.warn({ err }, "could not write the job's log"));
  await tearDownRun(run).catch((err) => log.error({ err }, "teardown failed"));
  const finished = await deps.store.get(run.job.id);
  if (finished?.finishedAt) deps.metrics.jobDuration.observe({ outcome: finished.state }, (finished.finishedAt - finished.createdAt) / 1000);
}
