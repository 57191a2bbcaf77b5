/**
 * Follows one Cloud Run execution until it has ended and its log has been read: the execution is
 * looked at, and Cloud Logging asked for the entries of that execution since the last one seen,
 * once per poll. Cloud Logging delivers entries a few seconds late and not always in one piece, so
 * a reread starts at the last timestamp seen (inclusive) and skips entries by their insertId; after
 * the execution ends, the log is read until the worker's result has arrived or `settleMs` passes.
 */
import type { LogEntry, RunApi, RunExecution } from "./run-api.js";

export interface FollowExecutionOptions {
  /** Full name: projects/<p>/locations/<r>/jobs/<job>/executions/<e>. */
  execution: string;
  jobName: string;
  onLine: (line: string, stream: "stdout" | "stderr") => void;
  /** True once the worker's result line has been read: no need to wait for more of the log. */
  resultSeen: () => boolean;
  pollMs: number;
  settleMs: number;
  /** How long the execution may go without starting (image pull, quota) before the follow gives up. */
  startTimeoutMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  call: <T>(fn: () => Promise<T>) => Promise<T>;
}

export interface FollowExecutionResult {
  /** The execution as last seen; null when it (its job) was deleted. */
  execution: RunExecution | null;
  /** Why the execution never started, when it did not. */
  notStarted?: string;
}

/** The filter for one execution's entries, from `since` (an RFC 3339 timestamp) on. */
export function executionLogFilter(jobName: string, execution: string, since?: string): string {
  const short = execution.split("/").pop() ?? execution;
  return [
    'resource.type="cloud_run_job"',
    `resource.labels.job_name="${jobName}"`,
    `labels."run.googleapis.com/execution_name"="${short}"`,
    ...(since ? [`timestamp>="${since}"`] : []),
  ].join(" AND ");
}

function streamOf(entry: LogEntry): "stdout" | "stderr" {
  return entry.logName?.endsWith("%2Fstderr") || entry.logName?.endsWith("/stderr") ? "stderr" : "stdout";
}

function finished(e: RunExecution): boolean {
  return Boolean(e.completionTime) || (e.succeededCount ?? 0) + (e.failedCount ?? 0) + (e.cancelledCount ?? 0) > 0;
}

export async function followExecutionLog(api: RunApi, o: FollowExecutionOptions): Promise<FollowExecutionResult> {
  const seen = new Set<string>();
  let since: string | undefined;

  async function readLog(): Promise<number> {
    let fresh = 0;
    let pageToken: string | undefined;
    do {
      const page = await o.call(() => api.listLogEntries(executionLogFilter(o.jobName, o.execution, since), pageToken));
      for (const entry of page.entries) {
        const id = entry.insertId ?? `${entry.timestamp}:${entry.textPayload}`;
        if (seen.has(id)) continue;
        seen.add(id);
        if (entry.timestamp) since = entry.timestamp;
        fresh += 1;
        const text = entry.textPayload ?? entry.jsonPayload?.message ?? "";
        for (const line of text.split("\n")) o.onLine(line, streamOf(entry));
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    return fresh;
  }

  const startedLooking = o.now();
  for (;;) {
    const execution = await o.call(() => api.getExecution(o.execution));
    await readLog();
    if (!execution) return { execution: null };
    if (finished(execution)) {
      const deadline = o.now() + o.settleMs;
      while (!o.resultSeen() && o.now() < deadline) {
        await o.sleep(o.pollMs);
        await readLog();
      }
      return { execution };
    }
    if (!execution.startTime && (execution.runningCount ?? 0) === 0 && o.now() - startedLooking > o.startTimeoutMs) {
      const why = execution.conditions?.find((c) => c.state === "CONDITION_FAILED" || c.state === "CONDITION_PENDING")?.message;
      return { execution, notStarted: `the Cloud Run execution did not start within ${Math.round(o.startTimeoutMs / 1000)}s${why ? `: ${why}` : ""}` };
    }
    await o.sleep(o.pollMs);
  }
}
