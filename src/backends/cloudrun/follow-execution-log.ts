/**
 * Follows one Cloud Run execution until it has ended and its log has been read: the execution is
 * looked at, and Cloud Logging asked for the entries of that execution, once per poll.
 *
 * Cloud Logging makes entries visible a few seconds late, and not in the order they were written:
 * an entry may appear after a later one has been read. So each read reaches back `lookbackMs`
 * before the newest timestamp seen and skips entries by insertId, and an entry is passed on only
 * once it is `holdMs` old, in timestamp order: the worker's protocol lines arrive in the order it
 * wrote them, a little late. After the execution ends, the log is read until the worker's result
 * has arrived or `settleMs` passes, and whatever is held is then passed on.
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
  /** How old an entry must be before it is passed on, so that a late earlier one can still go first (default 3000). */
  holdMs?: number;
  /** How far before the newest entry seen each read reaches back (default 60000). */
  lookbackMs?: number;
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

function byTime(a: LogEntry, b: LogEntry): number {
  const ta = a.timestamp ?? "";
  const tb = b.timestamp ?? "";
  if (ta !== tb) return ta < tb ? -1 : 1;
  return (a.insertId ?? "") < (b.insertId ?? "") ? -1 : (a.insertId ?? "") > (b.insertId ?? "") ? 1 : 0;
}

export async function followExecutionLog(api: RunApi, o: FollowExecutionOptions): Promise<FollowExecutionResult> {
  const holdMs = o.holdMs ?? 3000;
  const lookbackMs = o.lookbackMs ?? 60_000;
  const seen = new Set<string>();
  let held: LogEntry[] = [];
  let newest = 0;

  async function readLog(): Promise<void> {
    const since = newest > 0 ? new Date(newest - lookbackMs).toISOString() : undefined;
    let pageToken: string | undefined;
    do {
      const page = await o.call(() => api.listLogEntries(executionLogFilter(o.jobName, o.execution, since), pageToken));
      for (const entry of page.entries) {
        const id = entry.insertId ?? `${entry.timestamp}:${entry.textPayload}`;
        if (seen.has(id)) continue;
        seen.add(id);
        held.push(entry);
        const at = Date.parse(entry.timestamp ?? "");
        if (at > newest) newest = at;
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Passes on the held entries old enough (all of them with `all`), oldest first. */
  function release(all: boolean): void {
    held.sort(byTime);
    const cut = o.now() - holdMs;
    const ready = all ? held : held.filter((e) => !(Date.parse(e.timestamp ?? "") > cut));
    held = all ? [] : held.filter((e) => Date.parse(e.timestamp ?? "") > cut);
    for (const entry of ready) {
      const text = entry.textPayload ?? entry.jsonPayload?.message ?? "";
      for (const line of text.split("\n")) o.onLine(line, streamOf(entry));
    }
  }

  const startedLooking = o.now();
  for (;;) {
    const execution = await o.call(() => api.getExecution(o.execution));
    await readLog();
    if (!execution) {
      release(true);
      return { execution: null };
    }
    if (finished(execution)) {
      const deadline = o.now() + o.settleMs;
      release(false);
      while (!o.resultSeen() && o.now() < deadline) {
        await o.sleep(o.pollMs);
        await readLog();
        release(false);
      }
      release(true);
      return { execution };
    }
    release(false);
    if (!execution.startTime && (execution.runningCount ?? 0) === 0 && o.now() - startedLooking > o.startTimeoutMs) {
      const why = execution.conditions?.find((c) => c.state === "CONDITION_FAILED" || c.state === "CONDITION_PENDING")?.message;
      return { execution, notStarted: `the Cloud Run execution did not start within ${Math.round(o.startTimeoutMs / 1000)}s${why ? `: ${why}` : ""}` };
    }
    await o.sleep(o.pollMs);
  }
}
