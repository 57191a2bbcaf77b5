import type { ProgressEvent, WorkerInput, WorkerResult } from "../worker/protocol.js";

/** What a backend needs to know to make a worker; derived from the job, idempotent on `jobId`. */
export interface JobSpec {
  jobId: string;
  repoFullName: string;
  /** Hard limit for the whole worker lifetime; the backend's own dead-man switch uses it. */
  maxSeconds: number;
  machineType?: string;
  /**
   * The worker this one replaces, lost under its run (a spot VM preempted): the backend places the
   * new one where that loss is less likely (gce: on-demand, or the next zone).
   */
  replacing?: Worker;
  /** Only machines carrying every one of these labels may take the job (ssh hosts' `labels`); other backends have no such labels and ignore it. */
  hostLabels?: string[];
}

/** The thing a backend made for one job; found again by `list()` through its labels / folder. */
export interface Worker {
  id: string;
  backend: string;
  jobId: string;
  createdAt: number;
  /** Backend-specific facts (folder, pid, zone, VM name) as plain strings. */
  meta: Record<string, string>;
}

export type RunSpec = WorkerInput;

export interface RunResult extends WorkerResult {
  /** Seconds the worker process ran, measured by the backend. */
  computeSeconds: number;
  /** True when the run was stopped by the caller's AbortSignal (cancel or deadline). */
  aborted: boolean;
  /**
   * Set when the machine went away under the run, not the job's fault (a spot VM preempted, a VM
   * deleted from outside): the caller may run the job again once on a new worker.
   */
  lost?: { reason: string };
}

export interface Backend {
  readonly name: string;
  /** Room for jobs; with `hostLabels`, only on the machines that carry them (the ssh backend's hosts). */
  capacity(need?: Pick<JobSpec, "hostLabels">): Promise<{ max: number; active: number }>;
  /** Idempotent on job.jobId: a second call adopts the worker the first one made. */
  create(job: JobSpec, signal: AbortSignal): Promise<Worker>;
  run(worker: Worker, run: RunSpec, onEvent: (e: ProgressEvent) => void, signal: AbortSignal): Promise<RunResult>;
  /** Idempotent; a worker that is already gone is success. Kills every process it started. */
  destroy(worker: Worker): Promise<void>;
  /** Every worker this backend holds for this installation of agent-work. */
  list(): Promise<Worker[]>;
  /**
   * Housekeeping the reaper runs once a pass, for what is not a job's worker: a warm pool kept
   * filled and honest, leftovers such as per-job secrets swept. Backends with none leave it out.
   */
  maintain?(): Promise<BackendMaintenance>;
}

/** What one maintain() pass did; an act that failed carries its error and is tried again next pass. */
export interface BackendMaintenance {
  actions: { kind: string; id: string; reason: string; error?: string }[];
}

/** A backend plugin: a name and a factory taking its options explicitly (no module singletons). */
export interface BackendModule<Options = unknown> {
  name: string;
  create(options: Options): Backend;
}
