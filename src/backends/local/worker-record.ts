import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { JobSpec, Worker } from "../types.js";

/**
 * `<rootDir>/<jobId>/worker.json`: what the local backend knows about one worker. It sits beside
 * the `work/` folder the sandbox may write, never inside it, so the agent cannot forge the pid that
 * `destroy()` will signal.
 */
export interface WorkerRecord {
  jobId: string;
  repoFullName: string;
  createdAt: number;
  maxSeconds: number;
  /** The worker process (leader of its own process group) while or after it ran. */
  pid?: number;
  /** Its start time in clock ticks since boot (/proc/<pid>/stat field 22), to tell a reused pid apart. */
  pidStartTicks?: number;
}

export const RECORD_FILE = "worker.json";
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The folder for a job id; refuses ids that could escape rootDir. */
export function workerFolder(rootDir: string, jobId: string): string {
  if (!JOB_ID.test(jobId)) throw new Error(`job id ${JSON.stringify(jobId)} is not usable as a folder name`);
  return path.join(rootDir, jobId);
}

export async function readWorkerRecord(folder: string): Promise<WorkerRecord | null> {
  let text: string;
  try {
    text = await readFile(path.join(folder, RECORD_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return null;
    throw err;
  }
  try {
    const v = JSON.parse(text) as Partial<WorkerRecord>;
    if (typeof v.jobId !== "string" || typeof v.createdAt !== "number") return null;
    return { repoFullName: "", maxSeconds: 0, ...v } as WorkerRecord;
  } catch {
    // a half-written or foreign file: not a worker this backend can speak for
    return null;
  }
}

export async function writeWorkerRecord(folder: string, record: WorkerRecord): Promise<void> {
  await mkdir(folder, { recursive: true });
  const tmp = path.join(folder, `${RECORD_FILE}.${process.pid}.${Date.now()}.tmp`);
  await writeFile(tmp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
  await rename(tmp, path.join(folder, RECORD_FILE));
}

/** Creates the record only if none exists; returns whichever record is there afterwards. */
export async function claimWorkerRecord(folder: string, record: WorkerRecord): Promise<WorkerRecord> {
  await mkdir(folder, { recursive: true });
  try {
    await writeFile(path.join(folder, RECORD_FILE), JSON.stringify(record, null, 2) + "\n", { mode: 0o600, flag: "wx" });
    return record;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const existing = await readWorkerRecord(folder);
    if (existing) return existing;
    // unreadable leftovers: this create owns the folder now
    await writeWorkerRecord(folder, record);
    return record;
  }
}

export function recordFromJob(job: JobSpec, createdAt: number): WorkerRecord {
  return { jobId: job.jobId, repoFullName: job.repoFullName, createdAt, maxSeconds: job.maxSeconds };
}

export function workerFromRecord(backend: string, folder: string, record: WorkerRecord): Worker {
  const meta: Record<string, string> = { folder, repoFullName: record.repoFullName, maxSeconds: String(record.maxSeconds) };
  if (record.pid !== undefined) meta.pid = String(record.pid);
  return { id: `local-${record.jobId}`, backend, jobId: record.jobId, createdAt: record.createdAt, meta };
}
