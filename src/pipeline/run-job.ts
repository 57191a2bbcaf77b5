import type { Logger } from "pino";
import type { Job, StepRecord } from "../jobs/types.js";
import type { RepoConfig } from "../config/repo-config.js";
import type { BudgetName, Budgets } from "../cost/ledger.js";
import type { GitHub } from "../github/types.js";
import type { JobState } from "../jobs/state.js";
import type { Worker, RunResult } from "../backends/types.js";
import { ANSWER_FILE, type ProgressEvent, type WorkerInput } from "../worker/protocol.js";
import { agentCommand } from "../agents/presets.js";
import { agentEnvironment, agentSandbox } from "../worker/agent-sandbox.js";
import { buildPrompt, branchSlug } from "../jobs/build-prompt.js";
import { checkSenderPermission } from "../github/check-sender-permission.js";
import type { PipelineDeps } from "./deps.js";
import { StatusPublisher } from "./status-publisher.js";
import { ensureStatusSurfaces } from "./ensure-status-surfaces.js";
import { reportJob } from "./report-job.js";
import { markStep, withStep } from "../jobs/mark-step.js";
import { cancelledBy } from "./cancel-request.js";
import { handedBack } from "./hand-back.js";
import { mintKeptWorkerToken, revokeKeptWorkerToken } from "./worker-token-at-rest.js";
import { LeaseLostError } from "../store/job-store.js";
import { INITIAL_STEPS } from "../store/job-rows.js";
import { isTerminal } from "../jobs/state.js";
import { priceJob } from "../cost/price-job.js";
import { jobCeiling } from "./job-ceiling.js";
import { costOf, pricingOfWorker } from "../cost/price-job.js";
import { billWorker } from "./bill-worker.js";
import type { JobPricing } from "../cost/price-job.js";
import { AgentUsageMeter } from "../cost/agent-usage-meter.js";
import { overJobBudget } from "../cost/model-budget.js";

/**
 * Files that steer an agent. On a pull request they are taken from the base branch, not the PR
 * head: the PR's author may not be someone the maintainers trust to instruct the agent.
 */
export const AGENT_STEERING_PATHS = [
  "AGENTS.md",
  "CLAUDE.md",
  ".claude",
  ".mcp.json",
  ".opencode",
  "opencode.json",
  ".codex",
  ".aider.conf.yml",
  ".github/agent-work.yml",
  ".github/copilot-instructions.md",
] as const;

/** The ssh host labels the job asks for (a routing rule's or the repository's `ssh_labels`). */
export function hostLabels(job: Job): { hostLabels?: string[] } {
  return job.options.sshLabels?.length ? { hostLabels: job.options.sshLabels } : {};
}

/** The agent step gets the job's limit; the worker as a whole a little more for clone and push. */
export function jobLimits(deps: PipelineDeps, job: Job): { agentSeconds: number; hardSeconds: number } {
  const agentSeconds = (job.config?.maxMinutes ?? deps.config.defaultMaxMinutes) * deps.secondsPerMinute;
  const hardSeconds = agentSeconds + Math.max(10, 2 * deps.secondsPerMinute);
  return { agentSeconds, hardSeconds };
}

/**
 * Asked again at start, not only at intake: a job may wait in the queue (or be requeued after a
 * crash) long after it was admitted, and someone whose write access was taken away meanwhile
 * must not get a worker, a token or a bill. Same rule as intake, failing closed the same way.
 * Returns why the job may not start, or null.
 */
async function checkRequesterAgain(deps: PipelineDeps, octokit: GitHub, job: Job, log: Logger): Promise<string | null> {
  const verdict = await checkSenderPermission(octokit, { owner: job.owner, repo: job.repo, username: job.requester }, deps.config.requiredPermission);
  if (verdict.allowed) return null;
  log.warn({ permission: verdict.permission, requester: job.requester }, "the requester may no longer start agent work; nothing started");
  return `the requester's access was checked again at start: ${verdict.reason}`;
}

type BudgetReservation =
  { ok: true; job: Job; config: RepoConfig; budgets: Budgets; modelAllowance: number } | { ok: false; job: Job; message: string; budget: BudgetName };

/**
 * Budgets before any worker: the per-job budget may shorten the job, and the reservation of
 * its ceiling is what keeps simultaneous jobs under the monthly and hourly caps, and under the
 * backend's own BACKEND_CAPS.
 */
async function reserveBudget(deps: PipelineDeps, job: Job, config: RepoConfig, pricing: JobPricing, log: Logger): Promise<BudgetReservation> {
  // An agent with a model may spend up to what the job budget leaves after its compute: that is
  // held too, so the monthly and hourly caps count it while the job runs.
  const { budgets, maxMinutes, modelAllowanceUsd: modelAllowance, ceilingUsd } = jobCeiling(deps, config, pricing);
  const backendCap = deps.config.backendCaps?.[job.backend];
  const reservation = await deps.ledger.reserve({
    jobId: job.id,
    repoId: job.repoId,
    repoFullName: `${job.owner}/${job.repo}`,
    pricing,
    ceilingUsd,
    budgets,
    ...(backendCap ? { backendCap } : {}),
  });
  if (!reservation.ok) {
    const capped = reservation.budget === "backend_jobs" || reservation.budget === "backend_hourly";
    log[capped ? "info" : "warn"](
      { budget: reservation.budget, capUsd: reservation.capUsd, spentUsd: reservation.spentUsd },
      capped ? "the backend is at its cap; the job waits" : "over budget; no worker started",
    );
    return { ok: false, job, message: reservation.message, budget: reservation.budget };
  }
  if (maxMinutes < config.maxMinutes) {
    config = { ...config, maxMinutes };
    job = await deps.store.update(job.id, { config });
    log.info({ maxMinutes }, "the per-job budget shortens this job");
  }
  return { ok: true, job, config, budgets, modelAllowance };
}

/** What the worker script is given: where to clone and push, the agent's command, prompt and sandbox. */
function workerInput(
  deps: PipelineDeps,
  job: Job,
  config: RepoConfig,
  run: { branch: string; onIssue: boolean; token: string | null; agentSeconds: number; modelAllowance: number },
): WorkerInput {
  const { branch, onIssue, token, agentSeconds, modelAllowance } = run;
  const forkCloneUrl = job.options.forkCloneUrl;
  // A fork's run holds no secret: not even the proxy's model key or another credential it adds.
  const sandbox = agentSandbox(forkCloneUrl ? { ...deps.config, modelProxy: undefined, egressCredentials: [] } : deps.config, config);
  return {
    jobId: job.id,
    cloneUrl: forkCloneUrl ?? job.cloneUrl,
    baseBranch: job.prHeadRef ?? job.defaultBranch,
    branch,
    ...(onIssue ? { continueBranch: true } : {}),
    ...(job.options.ask ? { ask: true } : {}),
    // A branch someone else wrote (a PR's, or an issue's that a run before pushed): the files
    // that steer the agent come from the default branch.
    steering: { fromBranch: job.defaultBranch, paths: [...AGENT_STEERING_PATHS], ...(forkCloneUrl ? { fromUrl: job.cloneUrl } : {}) },
    token: token ?? "",
    ...(forkCloneUrl ? { noSecrets: true } : {}),
    ...(() => {
      const command = agentCommand(config.agent, {
        command: config.command,
        model: config.model,
        // A CLI that can stop itself at a dollar figure gets the model's share of the job budget.
        ...(modelAllowance > 0 ? { maxBudgetUsd: modelAllowance } : {}),
        extraArgs: deps.config.agentExtraArgs?.[config.agent],
      });
      return { agentArgv: command.argv, ...(command.promptOnStdin ? { promptOnStdin: true } : {}) };
    })(),
    prompt: buildPrompt({
      repoFullName: `${job.owner}/${job.repo}`,
      number: job.number,
      kind: job.kind,
      title: job.title,
      body: job.body,
      instructionsPrefix: config.instructions,
      extraInstructions: job.instructions,
      ...(job.options.ask ? { ask: { answerFile: ANSWER_FILE } } : {}),
      comments: job.context?.comments ?? [],
    }),
    commitMessage: `${job.title}\n\nWritten by agent-work job ${job.id} for #${job.number}.`,
    author: deps.config.gitAuthor,
    agentTimeoutSeconds: agentSeconds,
    ...setupAndCache(deps, job, config, agentSeconds),
    // No model key either on a fork's run: nothing the fork's code could steal.
    agentEnv: forkCloneUrl ? {} : agentEnvironment(deps.config, sandbox),
    sandbox,
  };
}

/**
 * The repository's setup commands, within their own limit (it counts in the agent's), and its
 * dependency cache on the worker's host: keyed by the repository's id as well as its name, so a
 * repository that takes over a renamed one's name never gets its cache. A fork's run gets none: the
 * fork's code would fill the cache the repository's own runs then trust.
 */
function setupAndCache(deps: PipelineDeps, job: Job, config: RepoConfig, agentSeconds: number): Pick<WorkerInput, "setup" | "cache"> {
  if (!config.setup?.length) return {};
  const setupSeconds = Math.min(agentSeconds, (config.setupMinutes ?? 10) * deps.secondsPerMinute);
  const setup = { commands: config.setup, timeoutSeconds: setupSeconds };
  const cacheMb = deps.config.dependencyCacheMaxMb;
  if (job.options.forkCloneUrl || !(cacheMb > 0)) return { setup };
  return { setup, cache: { key: `${job.owner}+${job.repo}-${job.repoId}`, maxMb: cacheMb } };
}

/**
 * The worker's progress events as they stream in: log lines (redacted, metered against the job
 * budget, to the status surfaces and the job's log) and steps, written in the order they came.
 */
function followProgress(run: {
  deps: PipelineDeps;
  log: Logger;
  publisher: StatusPublisher;
  meter: AgentUsageMeter;
  checkBudget: () => void;
  step: (name: string, status: StepRecord["status"], detail?: string) => Promise<void>;
  /** The job as it is now (each step writes it anew). */
  job: () => Job;
}): { onEvent: (e: ProgressEvent) => void; settled: () => Promise<void> } {
  const { deps, log, publisher, meter, checkBudget, step } = run;
  const jobId = run.job().id;
  let pending = Promise.resolve();
  const onProgress = (e: ProgressEvent): Promise<void> => {
    if (e.type === "log") {
      const line = deps.redactor.redact(e.line);
      // Only the agent's own output tells its model use; setup's is the repository's commands'.
      if ((e.stream === "stdout" || e.stream === "stderr") && meter.read(line)) checkBudget();
      publisher.log(line);
      deps.logs.append(jobId, e.stream, line);
      publisher.poke();
      return Promise.resolve();
    }
    if (e.type === "step") {
      deps.logs.append(jobId, "worker", `step ${e.step} ${e.status}${e.detail ? `: ${deps.redactor.redact(e.detail)}` : ""}`);
      const status = e.status === "started" ? "running" : e.status === "finished" ? "done" : e.status === "failed" ? "failed" : "skipped";
      // Serialise step writes so a fast worker's events land in order.
      pending = pending.then(() => step(e.step, status, e.detail));
      if (e.step === "agent" && status === "running") pending = pending.then(() => deps.onStep?.("agent-running", run.job()));
      if (e.step === "push" && status === "done") pending = pending.then(() => deps.onStep?.("pushed", run.job()));
      return pending;
    }
    return Promise.resolve();
  };
  return {
    onEvent: (e) => void onProgress(e).catch((err) => log.warn({ err }, "could not record progress")),
    settled: () => pending,
  };
}

/**
 * Runs one admitted job from `queued` to its end: the requester's permission checked again,
 * worker, token, worker script, report, teardown.
 * Each state change is written before the effect it starts; the worker is destroyed and the
 * token revoked on every path out, including errors. The token is kept sealed in the store while
 * it lives, so a controller that dies mid-run leaves the next one able to revoke it. Stopped with
 * a HandBack (shutdown), the job goes back to the queue instead of ending.
 */
export async function runJob(deps: PipelineDeps, queued: Job, signal: AbortSignal): Promise<Job> {
  const log = deps.log.child({ jobId: queued.id, deliveryId: queued.deliveryId });
  const octokit = await deps.github.forInstallation(queued.installationId);
  let job = await ensureStatusSurfaces(deps, octokit, queued);
  const publisher = new StatusPublisher(deps, octokit, job.id);
  const backend = deps.backends.get(job.backend);
  let config = job.config!;
  let worker: Worker | null = null;
  let token: string | null = null;
  let minting = false;
  let state: JobState = job.state;
  let reserved = false;
  let tornDown = false;
  // The agent's model use, read from its output as it runs: the live meter, the job budget's stop, the bill.
  const meter = new AgentUsageMeter(config.model);
  publisher.modelUsage = () => meter.usage();
  let budgetStop: string | null = null;
  const pricing = backend ? priceJob({ backend: job.backend, machine: job.options.machine }, deps.config.gce, deps.priceTable, deps.config.cloudrun) : null;

  /**
   * Destroys the worker and revokes the token as soon as the worker is done (reporting needs
   * neither), then bills the worker's lifetime, create to delete. Runs once; the `finally` calls
   * it too, so every path out tears down.
   */
  const teardown = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    // A process whose lease was taken over leaves the worker and the token to the new holder:
    // create() adopts a worker by the job's id, so destroying "ours" could end the new run.
    if (!(await deps.store.holdsLease().catch(() => true))) {
      log.error("the lease on this job was taken over; its worker and token are left to the new holder");
      return;
    }
    if (worker && backend)
      await backend.destroy(worker).catch((err) => log.error({ err, workerId: worker?.id }, "could not destroy the worker; the reaper will retry"));
    // Also when the mint itself failed: its answer may have been lost after GitHub minted it.
    if (token || minting) {
      await revokeKeptWorkerToken(deps, job.id, log, token ?? undefined).catch((err) =>
        log.error({ err }, "could not revoke the worker token; it stays sealed in the store and expires within the hour"),
      );
    }
    if (reserved && pricing) {
      // This worker's bill, then the job's: the sum of every worker it had (an earlier start's
      // worker was billed by the recovery that destroyed it).
      const bill = worker ? await billWorker(deps, job, worker, deps.now()) : null;
      const { totalUsd, billedSeconds } = await deps.ledger.finalize(job.id, meter.usage());
      job = await deps.store.update(job.id, { costUsd: totalUsd });
      deps.metrics.costUsd.inc({ repo: `${job.owner}/${job.repo}`, backend: job.backend }, bill?.totalUsd ?? 0);
      deps.metrics.workerSeconds.inc({ backend: job.backend }, bill?.billedSeconds ?? 0);
      log.info({ workerSeconds: bill?.billedSeconds ?? 0, billedSeconds, totalUsd }, "job billed");
    }
  };

  const move = async (to: JobState, patch: Parameters<typeof deps.store.transition>[3] = {}, note?: string) => {
    job = await deps.store.transition(job.id, state, to, patch, note);
    state = to;
    log.info({ state: to }, note ?? `job ${to}`);
  };
  const step = async (name: string, status: StepRecord["status"], detail?: string) => {
    job = await deps.store.update(job.id, { steps: markStep(job.steps, name, status, deps.now(), detail) });
    publisher.poke(true);
  };

  /**
   * Back to the queue after a shutdown stopped the run (worker destroyed, token revoked: torn
   * down). The start is not counted against the job's attempts: nothing went wrong with it.
   */
  const handBack = async (): Promise<Job> => {
    const fresh = await deps.store.getOrThrow(job.id);
    if (fresh.state === "provisioning" || fresh.state === "running") {
      job = await deps.store.transition(
        job.id,
        fresh.state,
        "queued",
        { worker: null, result: null, steps: INITIAL_STEPS, attempts: Math.max(0, fresh.attempts - 1) },
        "controller shutting down; job handed back to the queue",
      );
      state = "queued";
      log.info("job handed back to the queue");
    } else {
      job = fresh;
    }
    await publisher.flush().catch((e) => log.warn({ err: e }, "status update failed"));
    return job;
  };

  try {
    const refused = await checkRequesterAgain(deps, octokit, job, log);
    if (refused) {
      job = await deps.store.transition(job.id, "queued", "failed", { message: refused, finishedAt: deps.now(), costUsd: 0 });
      state = "failed";
      await publisher.flush();
      return job;
    }
    if (!backend || !pricing) throw new Error(`backend ${job.backend} is not enabled on this controller`);
    const reservation = await reserveBudget(deps, job, config, pricing, log);
    job = reservation.job;
    if (!reservation.ok && (reservation.budget === "backend_jobs" || reservation.budget === "backend_hourly")) {
      // Another job took the backend's last room after routing looked (a job routed at the same
      // moment, here or on another replica): this one waits, as routing would have had it.
      job = await deps.store.update(job.id, { options: { ...job.options, waiting: reservation.message } });
      await publisher.flush().catch((err) => log.warn({ err }, "status update failed"));
      return job;
    }
    if (!reservation.ok) {
      job = await deps.store.transition(job.id, "queued", "failed", { message: reservation.message, finishedAt: deps.now(), costUsd: 0 });
      state = "failed";
      await publisher.flush();
      return job;
    }
    reserved = true;
    config = reservation.config;
    const { budgets, modelAllowance } = reservation;
    const { agentSeconds, hardSeconds } = jobLimits(deps, job);
    const now = deps.now();
    await move("provisioning", {
      startedAt: now,
      deadlineAt: now + hardSeconds * 1000,
      attempts: job.attempts + 1,
      steps: markStep(markStep(job.steps, "queued", "done", now), "worker", "running", now),
    });
    publisher.poke(true);

    worker = await backend.create({ jobId: job.id, repoFullName: `${job.owner}/${job.repo}`, maxSeconds: hardSeconds + 30, ...hostLabels(job) }, signal);
    await deps.onStep?.("worker-created", job);
    job = await deps.store.update(job.id, { worker });
    // A fork's pull request runs with no secret at all: no token is minted for it.
    const forkCloneUrl = job.options.forkCloneUrl;
    if (!forkCloneUrl) {
      minting = true;
      // A question pushes nothing: its token can only read.
      token = await mintKeptWorkerToken(deps, job, job.options.ask ? "read" : "write");
    }
    await deps.onStep?.("token-minted", job);

    // On a pull request the agent works on the PR's own branch; on an issue, on the issue's
    // branch. That branch may exist already (an earlier job on the issue, a retry, or an earlier
    // start of this very job pushed it): the worker then goes on from it, as on a pull request,
    // instead of pushing over it. The worker looks when it clones, so there is no window between
    // a look here and the clone there.
    const branch = job.prHeadRef ?? job.branch ?? `${config.branchPrefix}${job.number}-${branchSlug(job.title)}`;
    const startedBefore = !job.prHeadRef && job.branch !== null;
    const onIssue = !job.prHeadRef && !forkCloneUrl;
    const input = workerInput(deps, job, config, { branch, onIssue, token, agentSeconds, modelAllowance });
    // Setup is a step of its own, between clone and agent, for a repository that has one.
    const steps = input.setup ? withStep(job.steps, "setup", "agent") : job.steps;
    await move("running", { branch, steps: markStep(steps, "worker", "done", deps.now(), worker.id) });
    publisher.poke(true);

    // The hard deadline aborts the worker even if the worker script's own agent timeout fails.
    const deadline = AbortSignal.timeout(hardSeconds * 1000);
    const overBudget = new AbortController();
    const runSignal = AbortSignal.any([signal, deadline, overBudget.signal]);
    let runningWorker = worker;
    // The streamed model use plus the worker's time so far, against the job budget: past it the
    // worker is stopped (the CLI's own limit, where it has one, usually stops it first).
    const checkBudget = () => {
      if (budgetStop !== null) return;
      const computeUsd = costOf(
        pricingOfWorker(runningWorker, pricing, deps.priceTable),
        Math.max(0, (deps.now() - runningWorker.createdAt) / 1000),
        deps.priceTable,
      ).totalUsd;
      const over = overJobBudget(budgets.jobUsd, computeUsd, meter.usage());
      if (!over) return;
      budgetStop = over;
      log.warn({ jobUsd: budgets.jobUsd }, over);
      overBudget.abort(new Error(over));
    };
    const progress = followProgress({ deps, log, publisher, meter, checkBudget, step, job: () => job });
    let result: RunResult = await backend.run(worker, input, progress.onEvent, runSignal);
    await progress.settled();
    if (result.lost && !runSignal.aborted) {
      // The machine went away under the run (a spot VM preempted): once, on a new worker the
      // backend places where that is less likely. Both workers are billed, each at its own price.
      const lost = worker;
      log.warn({ workerId: lost.id, reason: result.lost.reason }, "the worker was lost mid-run; running the job again once on a new one");
      await backend.destroy(lost).catch((err) => log.error({ err, workerId: lost.id }, "could not destroy the lost worker; the reaper will retry"));
      await billWorker(deps, job, lost, deps.now());
      worker = await backend.create(
        {
          jobId: job.id,
          repoFullName: `${job.owner}/${job.repo}`,
          maxSeconds: Math.max(60, Math.ceil((job.deadlineAt! - deps.now()) / 1000) + 30),
          replacing: lost,
          ...hostLabels(job),
        },
        runSignal,
      );
      runningWorker = worker;
      job = await deps.store.update(job.id, { worker });
      await step(
        "worker",
        "done",
        `${lost.id}: ${result.lost.reason}; run again on ${worker.id}${worker.meta.provisioningModel === "STANDARD" ? " (on-demand)" : ""}${worker.meta.zone ? ` in ${worker.meta.zone}` : ""}`,
      );
      result = await backend.run(worker, input, progress.onEvent, runSignal);
      await progress.settled();
    }
    log.info({ outcome: result.outcome, computeSeconds: result.computeSeconds }, "worker finished");
    if (startedBefore && result.continued && result.outcome === "no_changes" && result.baseSha) {
      // Nothing more to add to what an earlier start of this job pushed: that work is the result.
      result = {
        ...result,
        outcome: "pushed",
        branch,
        headSha: result.baseSha,
        message: `the agent added nothing to the work an earlier start pushed to ${branch}`,
      };
    }

    await teardown();
    // A shutdown that stopped the worker (or reached it first: a service manager may signal the
    // whole process tree) is no outcome to report; a result the worker did finish is.
    if (handedBack(signal) && (result.aborted || result.outcome === "error")) return await handBack();
    const stoppedBy = cancelledBy(signal);
    if (stoppedBy) {
      job = await deps.store.transition(job.id, "running", "cancelled", {
        result,
        computeSeconds: result.computeSeconds,
        finishedAt: deps.now(),
        message: `stopped by @${stoppedBy}`,
      });
      state = "cancelled";
      await publisher.flush();
      return job;
    }
    // A run the budget stopped, or whose agent stopped itself at its budget, fails with the figures.
    if (!budgetStop && result.outcome !== "pushed" && result.outcome !== "no_changes") checkBudget();
    if (budgetStop && result.outcome !== "pushed") result = { ...result, outcome: "error", message: budgetStop };
    const timedOut = !budgetStop && (result.outcome === "timed_out" || (result.aborted && deadline.aborted));
    await move("reporting", {
      // Stored before reporting starts, so a controller that dies while reporting can finish it.
      result: timedOut ? { ...result, outcome: "timed_out" } : result,
      headSha: result.headSha ?? null,
      computeSeconds: result.computeSeconds,
      ...(timedOut ? { message: `the agent ran past the ${config.maxMinutes}-minute limit and was stopped` } : {}),
    });
    await deps.onStep?.("reporting", job);
    job = await reportJob(deps, octokit, publisher, job);
    state = job.state;
    return job;
  } catch (err) {
    if (err instanceof LeaseLostError || signal.reason instanceof LeaseLostError) {
      // Someone else holds the job now: nothing of this run may be written or torn down.
      log.error({ err }, "stopped: the lease on this job was taken over");
      return job;
    }
    if (handedBack(signal)) {
      log.info({ err }, "stopped while starting, for a shutdown");
      await teardown().catch((e) => log.error({ err: e }, "teardown failed"));
      return await handBack();
    }
    log.error({ err }, "job failed");
    const message = deps.redactor.redact(err instanceof Error ? err.message : String(err));
    const fresh = await deps.store.getOrThrow(job.id);
    if (!isTerminal(fresh.state)) {
      // Stopped by a person while the worker was being made: cancelled, not failed.
      const by = cancelledBy(signal);
      job = await deps.store.transition(fresh.id, fresh.state, by ? "cancelled" : "failed", {
        message: by ? `stopped by @${by}` : message,
        finishedAt: deps.now(),
      });
      state = job.state;
    } else {
      job = fresh;
    }
    await teardown().catch((e) => log.error({ err: e }, "teardown failed"));
    await publisher.flush().catch((e) => log.warn({ err: e }, "final status update failed"));
    return job;
  } finally {
    publisher.stop();
    await deps.logs.flush().catch((err) => log.warn({ err }, "could not write the job's log"));
    await teardown().catch((err) => log.error({ err }, "teardown failed"));
    const finished = await deps.store.get(job.id);
    if (finished?.finishedAt) deps.metrics.jobDuration.observe({ outcome: finished.state }, (finished.finishedAt - finished.createdAt) / 1000);
  }
}
