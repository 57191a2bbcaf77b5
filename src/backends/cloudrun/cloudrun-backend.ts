/**
 * The `cloudrun` backend: one Cloud Run job per job, from the worker image, run once.
 *
 * create  — the job's input secret (Secret Manager, with a TTL, readable only by the workers'
 *           service account) holding a placeholder, then the Cloud Run job named from the job id
 *           (agent-work-<id>), labelled `agent-work-*`, its container reading the secret mounted as
 *           a file. 409 means adopt (the labels must say it is this job's).
 * run     — the input (token included) becomes the secret's latest version, then `jobs.run`
 *           starts one execution with a timeout of what is left of the job's limit. Its log is
 *           followed through Cloud Logging into the progress parser. Stopping the run cancels the
 *           execution.
 * destroy — cancels an unfinished execution, deletes the job and the secret; gone is success.
 * list    — the region's jobs with this deployment's labels.
 *
 * The input never travels in an environment variable or an argument: both show in the console and
 * in `jobs.get` to anyone with run.jobs.get. A mounted secret is read at the execution's start and
 * is visible only as the secret's name.
 */
import { realClock } from "../gce/backoff.js";
import type { JobSecrets } from "../gce/job-secrets.js";
import { createWorkerOutput } from "../../worker/worker-output.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import type { Backend, BackendModule, JobSpec, RunResult, RunSpec, Worker } from "../types.js";
import { followExecutionLog } from "./follow-execution-log.js";
import { GoogleApiError, type RunApi, type RunExecution, type RunJob } from "./run-api.js";
import {
  CLOUDRUN_LABEL,
  INPUT_DIR,
  INPUT_FILE,
  MANAGED_BY,
  buildRunJob,
  cloudRunJobId,
  inputSecretId,
  resourcesFor,
  type RunResources,
} from "./build-run-job.js";

export interface CloudRunLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface CloudRunBackendOptions {
  api: RunApi;
  /** Where the job's input goes: a per-job secret with a TTL (src/backends/gce/job-secrets.ts). */
  secrets: Pick<JobSecrets, "put" | "remove">;
  /** Worker image (Artifact Registry): node, git and the worker script. */
  image: string;
  /** The identity executions run as; the only reader of each job's input secret. */
  serviceAccount: string;
  /** Which controller deployment owns a job: list() sees only its own. */
  envLabel: string;
  /** CPU and memory of a task when the job names no machine type. */
  defaults: RunResources;
  /** Jobs that may exist at once (capacity's max). */
  maxJobs: number;
  /** Inside the image. Defaults: `node`, `/app/worker/agent-work-worker.mjs`. */
  nodePath?: string;
  workerScript?: string;
  /**
   * `none` (default): Cloud Run's sandbox (gVisor or the gen2 microVM) is the boundary and the
   * agent runs without bubblewrap, which needs user namespaces Cloud Run does not grant. `bwrap`:
   * for an image and environment where bubblewrap works.
   */
  agentSandbox?: "bwrap" | "none";
  /** Between two looks at an execution and its log (default 2000; tests use less). */
  pollIntervalMs?: number;
  /** After an execution ends, how long to wait for Cloud Logging to deliver its last lines (default 30000). */
  logSettleMs?: number;
  /** How old a log entry must be before it is passed on, so late earlier ones go first (default 3000). */
  logHoldMs?: number;
  /** How long an execution may take to start after jobs.run before the run fails (default 600). */
  startTimeoutSeconds?: number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  log?: CloudRunLog;
}

const NAME = "cloudrun";
const LOG_TAIL = 5;
/** A secret outlives its job's limit by this much, then Secret Manager deletes it whatever happened. */
const SECRET_TTL_MARGIN_SECONDS = 3600;
const PLACEHOLDER = '{"pending":"the input arrives when the run starts"}\n';

const RETRYABLE = new Set([429, 500, 502, 503, 504]);

/** Retries 429 and 5xx answers and dropped connections, with backoff; everything else throws at once. */
async function retrying<T>(fn: () => Promise<T>, sleep: (ms: number) => Promise<void>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const retryable = err instanceof GoogleApiError ? RETRYABLE.has(err.httpStatus) : err instanceof TypeError; // fetch failed
      if (!retryable || attempt >= attempts) throw err;
      await sleep(250 * 2 ** (attempt - 1));
    }
  }
}

export function executionFinished(e: RunExecution): boolean {
  return Boolean(e.completionTime) || (e.succeededCount ?? 0) + (e.failedCount ?? 0) + (e.cancelledCount ?? 0) > 0;
}

export function createCloudRunBackend(options: CloudRunBackendOptions): Backend {
  const { api, secrets } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? realClock.sleep;
  const pollMs = options.pollIntervalMs ?? 2000;
  const log = options.log;
  const call = <T>(fn: () => Promise<T>) => retrying(fn, (ms) => sleep(ms));

  function workerOf(job: RunJob): Worker | null {
    const labels = job.labels ?? {};
    const jobId = labels[CLOUDRUN_LABEL.job];
    if (!jobId || labels[CLOUDRUN_LABEL.managedBy] !== MANAGED_BY || labels[CLOUDRUN_LABEL.env] !== options.envLabel) return null;
    const short = (job.name ?? "").split("/").pop() ?? "";
    if (short !== cloudRunJobId(jobId)) return null;
    const created = Number(labels[CLOUDRUN_LABEL.createdAt]);
    return {
      id: `${NAME}-${jobId}`,
      backend: NAME,
      jobId,
      createdAt: Number.isFinite(created) && created > 0 ? created : Date.parse(job.createTime ?? "") || 0,
      meta: {
        jobName: short,
        maxSeconds: labels[CLOUDRUN_LABEL.maxSeconds] ?? "0",
        execution: job.latestCreatedExecution?.name ?? "",
      },
    };
  }

  async function list(): Promise<Worker[]> {
    return (await call(() => api.listJobs())).flatMap((j) => workerOf(j) ?? []);
  }

  async function create(job: JobSpec, signal: AbortSignal): Promise<Worker> {
    signal.throwIfAborted();
    const id = cloudRunJobId(job.jobId);
    const resources = resourcesFor(job.machineType, options.defaults);
    // The job's volume names the secret, so it exists before the job does; the input comes in run().
    await secrets.put(job.jobId, PLACEHOLDER, { ttlSeconds: job.maxSeconds + SECRET_TTL_MARGIN_SECONDS, repoFullName: job.repoFullName });
    signal.throwIfAborted();
    const body = buildRunJob(job, now(), {
      image: options.image,
      serviceAccount: options.serviceAccount,
      envLabel: options.envLabel,
      resources,
      nodePath: options.nodePath ?? "node",
      workerScript: options.workerScript ?? "/app/worker/agent-work-worker.mjs",
    });
    try {
      await call(() => api.createJob(id, body));
      log?.info({ jobId: job.jobId, job: id }, "Cloud Run worker job created (it runs when the run starts)");
    } catch (err) {
      if (!(err instanceof GoogleApiError && err.httpStatus === 409)) throw err;
    }
    // jobs.create is a long-running operation: the job is readable at once but may be refused by
    // jobs.run until Cloud Run has finished reconciling it.
    let made = await call(() => api.getJob(id));
    for (let waited = 0; made?.reconciling && waited < (options.startTimeoutSeconds ?? 600) * 1000; waited += pollMs) {
      await sleep(pollMs, signal);
      made = await call(() => api.getJob(id));
    }
    const worker = made && workerOf(made);
    if (!worker || worker.jobId !== job.jobId)
      throw new Error(
        `a Cloud Run job named ${id} exists in ${api.parent} but was not made by agent-work (${options.envLabel}) for job ${job.jobId}; remove it or use another region`,
      );
    return worker;
  }

  async function destroy(worker: Worker): Promise<void> {
    const id = cloudRunJobId(worker.jobId);
    const job = await call(() => api.getJob(id));
    if (job && workerOf(job)) {
      // Cancel first: an execution stops at once, and a delete then never waits on a running task.
      for (const e of await call(() => api.listExecutions(id))) {
        if (e.name && !executionFinished(e)) await call(() => api.cancelExecution(e.name!));
      }
      await call(() => api.deleteJob(id));
      log?.info({ jobId: worker.jobId, job: id }, "Cloud Run worker job deleted");
    }
    await secrets.remove(worker.jobId);
  }

  async function capacity(): Promise<{ max: number; active: number }> {
    return { max: options.maxJobs, active: (await list()).length };
  }

  async function run(worker: Worker, spec: RunSpec, onEvent: (e: ProgressEvent) => void, signal: AbortSignal): Promise<RunResult> {
    const id = cloudRunJobId(worker.jobId);
    if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
    const job = await call(() => api.getJob(id));
    const current = job && workerOf(job);
    if (!current) throw new Error(`no Cloud Run worker job ${id} for job ${worker.jobId}: create() it first`);
    if (current.meta.execution) {
      return {
        outcome: "error",
        message: `the worker for job ${worker.jobId} has already been started; a worker runs once`,
        computeSeconds: 0,
        aborted: false,
      };
    }
    const maxSeconds = Number(current.meta.maxSeconds ?? 0);
    const remainingMs = maxSeconds > 0 ? current.createdAt + maxSeconds * 1000 - now() : 24 * 3600 * 1000;
    if (remainingMs <= 0) return { outcome: "timed_out", message: `the worker is past its ${maxSeconds}s limit`, computeSeconds: 0, aborted: false };
    const sandbox = options.agentSandbox ?? "none";
    if (sandbox === "none" && spec.sandbox.kind === "bwrap" && spec.sandbox.egress) {
      return {
        outcome: "error",
        message:
          "network: allowlist cannot be held on the cloudrun backend without bubblewrap: the agent would share the task's network with the proxy it could bypass; ask for network: full, or run the job on another backend",
        computeSeconds: 0,
        aborted: false,
      };
    }
    const input: RunSpec = sandbox === "none" ? { ...spec, sandbox: { kind: "none" } } : spec;
    const timeoutSeconds = Math.max(1, Math.ceil(remainingMs / 1000));

    let execution: string;
    try {
      await secrets.put(worker.jobId, JSON.stringify(input) + "\n", { ttlSeconds: maxSeconds + SECRET_TTL_MARGIN_SECONDS });
      signal.throwIfAborted();
      execution = await call(() => api.runJob(id, { timeout: `${timeoutSeconds}s` }));
    } catch (err) {
      if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
      throw err;
    }
    log?.info({ jobId: worker.jobId, job: id, execution, timeoutSeconds }, "Cloud Run execution started");

    const output = createWorkerOutput(spec.token, onEvent, now);
    const { redact } = output;
    const tail: string[] = [];
    let aborted = false;
    let cancelling: Promise<unknown> | undefined;
    const onAbort = () => {
      aborted = true;
      cancelling ??= call(() => api.cancelExecution(execution)).catch((err: Error) =>
        log?.warn({ jobId: worker.jobId, err: err.message }, "could not cancel the execution; destroy() will try again"),
      );
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const startedAt = now();
    try {
      const followed = await followExecutionLog(api, {
        execution,
        jobName: id,
        onLine: (line, stream) => {
          if (stream === "stderr") output.stderr.push(line + "\n");
          else {
            tail.push(redact(line));
            if (tail.length > LOG_TAIL) tail.shift();
            output.stdout.push(line + "\n");
          }
        },
        resultSeen: () => output.result() !== undefined,
        pollMs,
        settleMs: options.logSettleMs ?? 30_000,
        startTimeoutMs: (options.startTimeoutSeconds ?? 600) * 1000,
        ...(options.logHoldMs !== undefined ? { holdMs: options.logHoldMs } : {}),
        now,
        sleep: (ms) => sleep(ms),
        call,
      });
      output.stdout.end();
      output.stderr.end();
      await cancelling;
      const result = output.result();
      const e = followed.execution;
      const ran = e?.startTime && e.completionTime ? (Date.parse(e.completionTime) - Date.parse(e.startTime)) / 1000 : (now() - startedAt) / 1000;
      const computeSeconds = Math.max(0.001, ran);
      if (aborted) return { ...(result ?? { outcome: "error", message: "stopped" }), computeSeconds, aborted: true };
      if (result) return { ...result, computeSeconds, aborted: false };
      if (followed.notStarted) {
        // It may still start later: cancel it, so it cannot run the job behind the caller's back.
        await call(() => api.cancelExecution(execution)).catch((err: Error) =>
          log?.warn({ jobId: worker.jobId, err: err.message }, "could not cancel the execution that did not start; destroy() will try again"),
        );
        return { outcome: "error", message: followed.notStarted, computeSeconds: 0, aborted: false };
      }
      if (e && (e.failedCount ?? 0) > 0 && ran >= timeoutSeconds - 1) {
        return { outcome: "timed_out", message: `the worker ran past its ${maxSeconds}s limit and Cloud Run stopped it`, computeSeconds, aborted: false };
      }
      const how = !e ? "its job was deleted" : (e.cancelledCount ?? 0) > 0 ? "cancelled" : (e.failedCount ?? 0) > 0 ? "failed" : "ended";
      const why = [tail.join(" | "), output.stderrTail()].filter(Boolean).join(" | ");
      return {
        outcome: "error",
        message: redact(`the worker stopped (${how}) without reporting a result${why ? `: ${why}` : ""}`),
        computeSeconds,
        aborted: false,
      };
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  return { name: NAME, capacity, create, run, destroy, list };
}

export const cloudrun = {
  name: NAME,
  create: (opts: CloudRunBackendOptions): Backend => createCloudRunBackend(opts),
} satisfies BackendModule<CloudRunBackendOptions>;

export { INPUT_DIR, INPUT_FILE };
