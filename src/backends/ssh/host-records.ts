/**
 * What the `ssh` backend keeps on a host, and the commands that read and write it. Each job has
 * `<workRoot>/<jobId>/` (see src/remote/remote-work-dir.ts) with a one-line `worker.json` beside
 * the `work/` folder the agent may write, so the agent cannot forge what `list()` reports.
 */
import type { NodeSSH } from "node-ssh";
import { remoteExec, remoteExecOk } from "../../remote/remote-exec.js";
import { checkRemoteWorkDir, remoteJobDir } from "../../remote/remote-work-dir.js";
import { shellQuote } from "../../remote/shell-quote.js";
import type { JobSpec } from "../types.js";

export const HOST_RECORD_FILE = "worker.json";

export interface HostRecord {
  jobId: string;
  repoFullName: string;
  createdAt: number;
  maxSeconds: number;
}

/** One job folder found on a host; `record` is null for a folder without a readable worker.json. */
export interface FoundJobDir {
  jobId: string;
  record: HostRecord | null;
}

const LIST_SCRIPT = `
cd -- "$1" 2>/dev/null || exit 0
for d in */; do
  [ -d "$d" ] || continue
  n=\${d%/}
  r=
  [ -f "$n/${HOST_RECORD_FILE}" ] && r=$(head -c 4096 "$n/${HOST_RECORD_FILE}" | tr -d '\\n')
  printf '%s\\t%s\\n' "$n" "$r"
done
`;

function parseRecord(text: string): HostRecord | null {
  try {
    const v = JSON.parse(text) as Partial<HostRecord>;
    if (typeof v.jobId !== "string" || typeof v.createdAt !== "number") return null;
    return {
      jobId: v.jobId,
      createdAt: v.createdAt,
      repoFullName: typeof v.repoFullName === "string" ? v.repoFullName : "",
      maxSeconds: typeof v.maxSeconds === "number" ? v.maxSeconds : 0,
    };
  } catch {
    return null;
  }
}

/** Every job folder under `workRoot` on the host. */
export async function listJobDirs(conn: NodeSSH, workRoot: string): Promise<FoundJobDir[]> {
  const out = await remoteExecOk(conn, `sh -c ${shellQuote(LIST_SCRIPT)} sh ${shellQuote(checkRemoteWorkDir(workRoot))}`, "listing job folders");
  const found: FoundJobDir[] = [];
  for (const line of out.split("\n")) {
    if (line === "") continue;
    const tab = line.indexOf("\t");
    const jobId = tab < 0 ? line : line.slice(0, tab);
    const record = tab < 0 ? null : parseRecord(line.slice(tab + 1));
    found.push({ jobId, record: record && record.jobId === jobId ? record : null });
  }
  return found;
}

/**
 * Makes the job's folder and its record unless the folder exists; returns the record that is there
 * afterwards (`created: false` when an earlier create made it). The record travels on stdin.
 */
export async function claimJobDir(conn: NodeSSH, workRoot: string, job: JobSpec, createdAt: number): Promise<{ record: HostRecord; created: boolean }> {
  const dir = remoteJobDir(workRoot, job.jobId);
  const record: HostRecord = { jobId: job.jobId, repoFullName: job.repoFullName, createdAt, maxSeconds: job.maxSeconds };
  const file = shellQuote(`${dir}/${HOST_RECORD_FILE}`);
  const made = await remoteExec(
    conn,
    `umask 077 && mkdir -p -- ${shellQuote(checkRemoteWorkDir(workRoot))} && mkdir -- ${shellQuote(dir)} 2>/dev/null && cat > ${file}.tmp && mv -f -- ${file}.tmp ${file}`,
    { stdin: JSON.stringify(record) + "\n" },
  );
  if (made.code === 0) return { record, created: true };
  const existing = await readJobRecord(conn, workRoot, job.jobId);
  if (existing) return { record: existing, created: false };
  // A folder without a record: what a create cut short left. This create owns it now.
  await remoteExecOk(conn, `umask 077 && cat > ${file}.tmp && mv -f -- ${file}.tmp ${file}`, "writing the worker record", {
    stdin: JSON.stringify(record) + "\n",
  });
  return { record, created: true };
}

export async function readJobRecord(conn: NodeSSH, workRoot: string, jobId: string): Promise<HostRecord | null> {
  const r = await remoteExec(conn, `cat -- ${shellQuote(`${remoteJobDir(workRoot, jobId)}/${HOST_RECORD_FILE}`)}`);
  if (r.code !== 0) return null;
  const record = parseRecord(r.stdout.trim());
  return record && record.jobId === jobId ? record : null;
}
