/**
 * The `local` backend: one worker is one child process on this machine, in its own folder and its
 * own process group, with the agent step under bubblewrap (the worker script does that part).
 *
 * Layout: `<rootDir>/<jobId>/worker.json` (this backend's record) and `<rootDir>/<jobId>/work/`
 * (the worker script's cwd, which the sandboxed agent can write). The worker gets a minimal
 * environment, never the controller's: the controller holds the App private key and webhook secret.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { createWorkerOutput } from "../../worker/worker-output.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import { workerScriptPath } from "../../worker/worker-script-path.js";
import type { Backend, BackendModule, JobSpec, RunResult, RunSpec, Worker } from "../types.js";
import { processesWorkingIn, processStartTicks, stopGroup } from "./process-group.js";
import { claimWorkerRecord, readWorkerRecord, recordFromJob, workerFolder, workerFromRecord, writeWorkerRecord } from "./worker-record.js";

export interface LocalBackendOptions {
  /** Where worker folders live; one subfolder per job id. */
  rootDir: string;
  maxConcurrent: number;
  /** Node binary for the worker script (default: the one running the controller). */
  nodePath?: string;
  workerScript?: string;
  now?: () => number;
  /** Between SIGTERM and SIGKILL when a run is stopped or a worker destroyed (default 5000). */
  killGraceMs?: number;
}

const NAME = "local";

export function createLocalBackend(options: LocalBackendOptions): Backend {
  const now = options.now ?? Date.now;
  const nodePath = options.nodePath ?? process.execPath;
  const workerScript = options.workerScript ?? workerScriptPath;
  const graceMs = options.killGraceMs ?? 5000;
  const folderOf = (jobId: string) => workerFolder(options.rootDir, jobId);

  async function list(): Promise<Worker[]> {
    let entries;
    try {
      entries = await readdir(options.rootDir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const workers: Worker[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const folder = path.join(options.rootDir, entry.name);
      const record = await readWorkerRecord(folder);
      if (record && record.jobId === entry.name) workers.push(workerFromRecord(NAME, folder, record));
    }
    return workers;
  }

  async function create(job: JobSpec, signal: AbortSignal): Promise<Worker> {
    signal.throwIfAborted();
    const folder = folderOf(job.jobId);
    const record = await claimWorkerRecord(folder, recordFromJob(job, now()));
    await mkdir(path.join(folder, "work"), { recursive: true });
    return workerFromRecord(NAME, folder, record);
  }

  async function run(worker: Worker, spec: RunSpec, onEvent: (e: ProgressEvent) => void, signal: AbortSignal): Promise<RunResult> {
    const folder = folderOf(worker.jobId);
    const record = await readWorkerRecord(folder);
    if (!record) throw new Error(`no local worker for job ${worker.jobId} under ${options.rootDir}: create() it first`);
    const started = now();
    const elapsed = () => Math.max(0, now() - started) / 1000;
    if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
    // The dead-man switch counts from create(), like a VM's maxRunDuration counts from boot.
    const remainingMs = record.maxSeconds > 0 ? record.createdAt + record.maxSeconds * 1000 - now() : Infinity;
    if (remainingMs <= 0) return { outcome: "timed_out", message: `the worker is past its ${record.maxSeconds}s limit`, computeSeconds: 0, aborted: false };

    const workDir = path.join(folder, "work");
    await mkdir(workDir, { recursive: true });
    const output = createWorkerOutput(spec.token, onEvent, now);
    const { redact } = output;

    const child = execa(nodePath, [workerScript], {
      cwd: workDir,
      env: { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: folder, LANG: process.env.LANG ?? "C.UTF-8" },
      extendEnv: false,
      detached: true,
      cleanup: false,
      input: JSON.stringify(spec) + "\n",
      buffer: false,
      reject: false,
    });
    child.stdout?.on("data", (chunk: Buffer) => output.stdout.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => output.stderr.push(chunk));

    const pid = child.pid;
    let aborted = false;
    let deadman = false;
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= pid === undefined ? Promise.resolve() : stopGroup(pid, graceMs);
    };
    const onAbort = () => {
      aborted = true;
      stop();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const deadmanTimer = Number.isFinite(remainingMs)
      ? setTimeout(() => {
          deadman = true;
          stop();
        }, remainingMs)
      : undefined;

    if (pid !== undefined) {
      const ticks = await processStartTicks(pid);
      await writeWorkerRecord(folder, { ...record, pid, ...(ticks === null ? {} : { pidStartTicks: ticks }) });
    }

    const done = await child;
    clearTimeout(deadmanTimer);
    signal.removeEventListener("abort", onAbort);
    await stopping;
    output.stdout.end();
    output.stderr.end();
    const result = output.result();

    const computeSeconds = elapsed();
    if (deadman && !aborted) {
      return { ...result, outcome: "timed_out", message: `the worker ran past its ${record.maxSeconds}s limit and was killed`, computeSeconds, aborted: false };
    }
    if (result) return { ...result, computeSeconds, aborted };
    if (aborted) return { outcome: "error", message: "stopped", computeSeconds, aborted: true };
    const how =
      done.failed && done.exitCode === undefined && !done.signal ? done.shortMessage : done.signal ? `signal ${done.signal}` : `code ${done.exitCode}`;
    const tail = output.stderrTail();
    return {
      outcome: "error",
      message: redact(`the worker exited (${how}) without reporting a result${tail ? `: ${tail}` : ""}`),
      computeSeconds,
      aborted: false,
    };
  }

  async function destroy(worker: Worker): Promise<void> {
    const folder = folderOf(worker.jobId);
    const record = await readWorkerRecord(folder);
    if (record?.pid !== undefined) {
      const ticks = await processStartTicks(record.pid);
      // Signal the group only if its leader is gone (the group may outlive it) or is still our
      // worker; a leader with another start time means the pid was reused by someone else.
      if (ticks === null || ticks === record.pidStartTicks) await stopGroup(record.pid, graceMs);
    }
    // Whatever still works inside the folder was started by this worker and outlived it.
    for (const pid of await processesWorkingIn(folder)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await rm(folder, { recursive: true, force: true });
  }

  async function capacity(): Promise<{ max: number; active: number }> {
    return { max: options.maxConcurrent, active: (await list()).length };
  }

  return { name: NAME, capacity, create, run, destroy, list };
}

export const local = {
  name: NAME,
  create: (opts: LocalBackendOptions): Backend => createLocalBackend(opts),
} satisfies BackendModule<LocalBackendOptions>;
