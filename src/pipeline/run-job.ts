import type { Job } from "../jobs/types.js";
import type { Budgets } from "../cost/ledger.js";
import type { JobPricing } from "../cost/price-job.js";
import type { Backend } from "../backends/types.js";
import { branchSlug } from "../jobs/build-prompt.js";
import { markStep, withStep } from "../jobs/mark-step.js";
import type { PipelineDeps } from "./deps.js";
import { cancelledBy } from "./cancel-request.js";
import { checkRequesterAgain } from "./check-requester-again.js";
import { closeRun, endCancelled, endOnError, handBackToQueue, reportResult } from "./end-run.js";
import { handedBack } from "./hand-back.js";
import { openRun, type JobRun } from "./job-run.js";
import { reserveBudget } from "./reserve-budget.js";
import { armRunStops, runWorker, type WorkerRun } from "./run-worker.js";
import { tearDownRun } from "./tear-down-run.js";
import { workerInput } from "./worker-input.js";
import { jobLimits, workerSpec } from "./worker-spec.js";
import { mintKeptWorkerToken } from "./worker-token-at-rest.js";

/**
 * Runs one admitted job from `queued` to its end: the requester's permission checked again,
 * worker, token, worker script, report, teardown.
 * Each state change is written before the effect it starts; the worker is destroyed and the
 * token revoked on every path out, including errors. The token is kept sealed in the store while
 * it lives, so a controller that dies mid-run leaves the next one able to revoke it. Stopped with
 * a HandBack (shutdown), the job goes back to the queue instead of ending.
 */
export async function runJob(deps: PipelineDeps, queued: Job, signal: AbortSignal): Promise<Job> {
  const run = await openRun(deps, queued, signal);
  try {
    if (await refusedAgainAtStart(run)) return run.job;
    const { backend, pricing } = enabledBackend(run);
    const budget = await reserveOrWait(run, pricing);
    if (!budget) return run.job;
    const limits = jobLimits(deps, run.job);
    await createWorker(run, backend, limits.hardSeconds);
    await mintWorkerToken(run);
    const work = await startRunning(run, limits.agentSeconds, budget.modelAllowance);
    const stops = armRunStops(run, pricing, budget.budgets.jobUsd, limits.hardSeconds);
    const result = await runWorker(run, backend, work, stops);
    await tearDownRun(run);
    // A shutdown that stopped the worker (or reached it first: a service manager may signal the
    // whole process tree) is no outcome to report; a result the worker did finish is.
    if (handedBack(signal) && (result.aborted || result.outcome === "error")) return await handBackToQueue(run);
    const stoppedBy = cancelledBy(signal);
    if (stoppedBy) return await endCancelled(run, result, stoppedBy);
    return await reportResult(run, result, stops);
  } catch (err) {
    return await endOnError(run, err);
  } finally {
    await closeRun(run);
  }
}

/** The requester lost the right to start agent work while the job waited: it fails, nothing started. */
async function refusedAgainAtStart(run: JobRun): Promise<boolean> {
  const { deps } = run;
  const refused = await checkRequesterAgain(deps, run.octokit, run.job, run.log);
  if (!refused) return false;
  run.job = await deps.store.transition(run.job.id, "queued", "failed", { message: refused, finishedAt: deps.now(), costUsd: 0 });
  run.state = "failed";
  await run.publisher.flush();
  return true;
}

function enabledBackend(run: JobRun): { backend: Backend; pricing: JobPricing } {
  const { backend, pricing } = run;
  if (!backend || !pricing) throw new Error(`backend ${run.job.backend} is not enabled on this controller`);
  return { backend, pricing };
}

/**
 * The job's budget reserved, or null when the job may not start now: it waits when its backend is
 * at its cap, and fails when a budget has no room for it.
 */
async function reserveOrWait(run: JobRun, pricing: JobPricing): Promise<{ budgets: Budgets; modelAllowance: number } | null> {
  const { deps, log } = run;
  const reservation = await reserveBudget(deps, run.job, run.config, pricing, log);
  run.job = reservation.job;
  if (!reservation.ok && (reservation.budget === "backend_jobs" || reservation.budget === "backend_hourly")) {
    // Another job took the backend's last room after routing looked (a job routed at the same
    // moment, here or on another replica): this one waits, as routing would have had it.
    run.job = await deps.store.update(run.job.id, { options: { ...run.job.options, waiting: reservation.message } });
    await run.publisher.flush().catch((err) => log.warn({ err }, "status update failed"));
    return null;
  }
  if (!reservation.ok) {
    run.job = await deps.store.transition(run.job.id, "queued", "failed", { message: reservation.message, finishedAt: deps.now(), costUsd: 0 });
    run.state = "failed";
    await run.publisher.flush();
    return null;
  }
  run.reserved = true;
  run.config = reservation.config;
  return { budgets: reservation.budgets, modelAllowance: reservation.modelAllowance };
}

/** `provisioning`, then the worker: the backend makes it (or adopts the one it made for this job before). */
async function createWorker(run: JobRun, backend: Backend, hardSeconds: number): Promise<void> {
  const { deps, job } = run;
  const now = deps.now();
  await run.move("provisioning", {
    startedAt: now,
    deadlineAt: now + hardSeconds * 1000,
    attempts: job.attempts + 1,
    steps: markStep(markStep(job.steps, "queued", "done", now), "worker", "running", now),
  });
  run.publisher.poke(true);
  const worker = await backend.create(workerSpec(run.job, hardSeconds + 30), run.signal);
  run.worker = worker;
  await deps.onStep?.("worker-created", run.job);
  run.job = await deps.store.update(run.job.id, { worker });
}

async function mintWorkerToken(run: JobRun): Promise<void> {
  const { deps } = run;
  // A fork's pull request runs with no secret at all: no token is minted for it.
  if (!run.job.options.forkCloneUrl) {
    run.minting = true;
    // A question pushes nothing: its token can only read.
    run.token = await mintKeptWorkerToken(deps, run.job, run.job.options.ask ? "read" : "write");
  }
  await deps.onStep?.("token-minted", run.job);
}

/** `running`, on the branch the agent works on, with the worker script's input. */
async function startRunning(run: JobRun, agentSeconds: number, modelAllowance: number): Promise<WorkerRun> {
  const { deps, job, config } = run;
  // On a pull request the agent works on the PR's own branch; on an issue, on the issue's
  // branch. That branch may exist already (an earlier job on the issue, a retry, or an earlier
  // start of this very job pushed it): the worker then goes on from it, as on a pull request,
  // instead of pushing over it. The worker looks when it clones, so there is no window between
  // a look here and the clone there.
  const branch = job.prHeadRef ?? job.branch ?? `${config.branchPrefix}${job.number}-${branchSlug(job.title)}`;
  const startedBefore = !job.prHeadRef && job.branch !== null;
  const onIssue = !job.prHeadRef && !job.options.forkCloneUrl;
  const input = workerInput(deps, job, config, { branch, onIssue, token: run.token, agentSeconds, modelAllowance });
  // Setup is a step of its own, between clone and agent, for a repository that has one.
  const steps = input.setup ? withStep(job.steps, "setup", "agent") : job.steps;
  await run.move("running", { branch, steps: markStep(steps, "worker", "done", deps.now(), run.worker!.id) });
  run.publisher.poke(true);
  return { input, branch, startedBefore };
}
