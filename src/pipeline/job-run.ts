import type { Logger } from "pino";
import type { Job, StepRecord } from "../jobs/types.js";
import type { RepoConfig } from "../config/repo-config.js";
import type { GitHub } from "../github/types.js";
import type { JobState } from "../jobs/state.js";
import type { Backend, Worker } from "../backends/types.js";
import type { JobPatch } from "../store/job-rows.js";
import { priceJob, type JobPricing } from "../cost/price-job.js";
import { AgentUsageMeter } from "../cost/agent-usage-meter.js";
import { markStep } from "../jobs/mark-step.js";
import type { PipelineDeps } from "./deps.js";
import { StatusPublisher } from "./status-publisher.js";
import { ensureStatusSurfaces } from "./ensure-status-surfaces.js";

/**
 * One run of a job, handed from step to step of runJob: the job as last written, and what the
 * run has made so far (a reservation, a worker, a token), which is what the teardown undoes.
 */
export class JobRun {
  job: Job;
  /** The state the run last moved the job to: the `from` of its next move. */
  state: JobState;
  config: RepoConfig;
  reserved = false;
  worker: Worker | null = null;
  token: string | null = null;
  /** Set before the mint: a mint that failed may still have made a token (its answer lost). */
  minting = false;
  tornDown = false;
  /** Why the job budget stopped the worker, once it has. */
  budgetStop: string | null = null;
  /** The agent's model use, read from its output as it runs: the live meter, the job budget's stop, the bill. */
  readonly meter: AgentUsageMeter;
  readonly log: Logger;

  constructor(
    readonly deps: PipelineDeps,
    readonly signal: AbortSignal,
    readonly octokit: GitHub,
    job: Job,
    readonly publisher: StatusPublisher,
    /** Undefined when the job's backend is not enabled on this controller. */
    readonly backend: Backend | undefined,
    readonly pricing: JobPricing | null,
  ) {
    this.job = job;
    this.state = job.state;
    this.config = job.config!;
    this.log = deps.log.child({ jobId: job.id, deliveryId: job.deliveryId });
    this.meter = new AgentUsageMeter(this.config.model);
    publisher.modelUsage = () => this.meter.usage();
  }

  /** Moves the job on from the run's last state, and says so in the log. */
  async move(to: JobState, patch: JobPatch = {}, note?: string): Promise<void> {
    this.job = await this.deps.store.transition(this.job.id, this.state, to, patch, note);
    this.state = to;
    this.log.info({ state: to }, note ?? `job ${to}`);
  }

  /** Marks one of the job's steps and shows it at once. */
  async step(name: string, status: StepRecord["status"], detail?: string): Promise<void> {
    this.job = await this.deps.store.update(this.job.id, { steps: markStep(this.job.steps, name, status, this.deps.now(), detail) });
    this.publisher.poke(true);
  }
}

/** The run of a job claimed in `queued`: its status surfaces made (or found), its backend and price looked up. */
export async function openRun(deps: PipelineDeps, queued: Job, signal: AbortSignal): Promise<JobRun> {
  const octokit = await deps.github.forInstallation(queued.installationId);
  const job = await ensureStatusSurfaces(deps, octokit, queued);
  const publisher = new StatusPublisher(deps, octokit, job.id);
  const backend = deps.backends.get(job.backend);
  const pricing = backend ? priceJob({ backend: job.backend, machine: job.options.machine }, deps.config.gce, deps.priceTable, deps.config.cloudrun) : null;
  return new JobRun(deps, signal, octokit, job, publisher, backend, pricing);
}
