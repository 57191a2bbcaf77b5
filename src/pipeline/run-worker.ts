import type { Backend, RunResult, Worker } from "../backends/types.js";
import type { WorkerInput } from "../worker/protocol.js";
import { costOf, pricingOfWorker, type JobPricing } from "../cost/price-job.js";
import { overJobBudget } from "../cost/model-budget.js";
import { billWorker } from "./bill-worker.js";
import { followProgress } from "./follow-progress.js";
import type { JobRun } from "./job-run.js";
import { workerSpec } from "./worker-spec.js";

/** What the worker script runs with, and what the run already knew of the branch. */
export interface WorkerRun {
  input: WorkerInput;
  branch: string;
  /** The job already had its branch (an earlier start pushed it). */
  startedBefore: boolean;
}

/** What stops a worker besides the controller's own signal: the job's hard deadline and its budget. */
export interface RunStops {
  /** The controller's signal, the deadline and the budget's stop together: the run's signal. */
  signal: AbortSignal;
  deadline: AbortSignal;
  /** Stops the worker once the job has spent its budget; run.budgetStop says why. */
  checkBudget: () => void;
}

export function armRunStops(run: JobRun, pricing: JobPricing, jobUsd: number, hardSeconds: number): RunStops {
  const { deps, log, meter } = run;
  // The hard deadline aborts the worker even if the worker script's own agent timeout fails.
  const deadline = AbortSignal.timeout(hardSeconds * 1000);
  const overBudget = new AbortController();
  const signal = AbortSignal.any([run.signal, deadline, overBudget.signal]);
  // The streamed model use plus the worker's time so far, against the job budget: past it the
  // worker is stopped (the CLI's own limit, where it has one, usually stops it first).
  const checkBudget = () => {
    if (run.budgetStop !== null) return;
    const worker = run.worker!;
    const computeUsd = costOf(pricingOfWorker(worker, pricing, deps.priceTable), Math.max(0, (deps.now() - worker.createdAt) / 1000), deps.priceTable).totalUsd;
    const over = overJobBudget(jobUsd, computeUsd, meter.usage());
    if (!over) return;
    run.budgetStop = over;
    log.warn({ jobUsd }, over);
    overBudget.abort(new Error(over));
  };
  return { signal, deadline, checkBudget };
}

/**
 * Runs the worker script on the run's worker, following its progress, and once more on a new
 * worker if the machine went away under it. The result is the worker's, except that a run which
 * added nothing to what an earlier start pushed reports that work as its own.
 */
export async function runWorker(run: JobRun, backend: Backend, work: WorkerRun, stops: RunStops): Promise<RunResult> {
  const { deps, log, publisher, meter } = run;
  const progress = followProgress({ deps, log, publisher, meter, checkBudget: stops.checkBudget, step: (...a) => run.step(...a), job: () => run.job });
  let result = await backend.run(run.worker!, work.input, progress.onEvent, stops.signal);
  await progress.settled();
  if (result.lost && !stops.signal.aborted) {
    await replaceLostWorker(run, backend, result.lost.reason, stops.signal);
    result = await backend.run(run.worker!, work.input, progress.onEvent, stops.signal);
    await progress.settled();
  }
  log.info({ outcome: result.outcome, computeSeconds: result.computeSeconds }, "worker finished");
  if (work.startedBefore && result.continued && result.outcome === "no_changes" && result.baseSha) {
    // Nothing more to add to what an earlier start of this job pushed: that work is the result.
    result = {
      ...result,
      outcome: "pushed",
      branch: work.branch,
      headSha: result.baseSha,
      message: `the agent added nothing to the work an earlier start pushed to ${work.branch}`,
    };
  }
  return result;
}

/**
 * The machine went away under the run (a spot VM preempted): once, on a new worker the backend
 * places where that is less likely. Both workers are billed, each at its own price.
 */
async function replaceLostWorker(run: JobRun, backend: Backend, reason: string, signal: AbortSignal): Promise<void> {
  const { deps, log } = run;
  const lost = run.worker!;
  log.warn({ workerId: lost.id, reason }, "the worker was lost mid-run; running the job again once on a new one");
  await backend.destroy(lost).catch((err) => log.error({ err, workerId: lost.id }, "could not destroy the lost worker; the reaper will retry"));
  await billWorker(deps, run.job, lost, deps.now());
  const worker = await backend.create(workerSpec(run.job, Math.max(60, Math.ceil((run.job.deadlineAt! - deps.now()) / 1000) + 30), lost), signal);
  run.worker = worker;
  run.job = await deps.store.update(run.job.id, { worker });
  await run.step(
    "worker",
    "done",
    `${lost.id}: ${reason}; run again on ${worker.id}${worker.meta.provisioningModel === "STANDARD" ? " (on-demand)" : ""}${worker.meta.zone ? ` in ${worker.meta.zone}` : ""}`,
  );
}
