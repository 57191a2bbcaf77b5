import path from "node:path";

/**
 * The layout of one job's folder on a worker host reached over SSH (the `ssh` and `gce` backends):
 *
 *   <workDir>/            0700, made by the backend
 *     worker/             the worker script (agent-work-worker.mjs and lib/), unpacked by each run's start
 *     worker.pid          the worker's process group id, written by the start command
 *     stop                present once a stop was asked for: a worker not yet started never starts
 *     work/               the worker script's cwd; the sandboxed agent may write here, so nothing
 *                         the controller trusts (pidfile, backend records) lives inside it
 */
export const REMOTE_WORKER_DIR = "worker";
export const REMOTE_WORKER_SCRIPT = "worker/agent-work-worker.mjs";
export const REMOTE_PID_FILE = "worker.pid";
export const REMOTE_STOP_FILE = "stop";
export const REMOTE_WORK_SUBDIR = "work";

/** A work dir must be a plain path (absolute, or relative to the login user's home). */
export function checkRemoteWorkDir(workDir: string): string {
  const trimmed = workDir.replace(/\/+$/, "");
  if (trimmed === "" || trimmed === "/" || /[\0\n\r]/.test(trimmed) || trimmed.split("/").some((part) => part === ".." || part === ".")) {
    throw new Error(`${JSON.stringify(workDir)} is not usable as a remote work dir`);
  }
  return trimmed;
}

/** The work dir of a job under a root folder on the host, refusing ids that could leave it. */
export function remoteJobDir(root: string, jobId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(jobId)) throw new Error(`job id ${JSON.stringify(jobId)} is not usable as a folder name`);
  return path.posix.join(checkRemoteWorkDir(root), jobId);
}
