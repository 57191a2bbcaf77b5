import type { Logger } from "pino";
import type { JobLog } from "../logs/job-log.js";

const DAY_MS = 86_400_000;

/**
 * Deletes job log lines older than the retention time (LOG_RETENTION_DAYS): once at start, then
 * every `everyMs` (an hour by default). Jobs and their state stay; only the full log goes. Each
 * replica may run it: the delete is one idempotent statement.
 */
export function startLogRetention(deps: { logs: JobLog; days: number; now: () => number; log: Logger; everyMs?: number }): {
  pruneOnce(): Promise<number>;
  stop(): void;
} {
  const log = deps.log.child({ name: "log-retention" });
  const pruneOnce = async () => {
    const before = deps.now() - deps.days * DAY_MS;
    const deleted = await deps.logs.prune(before);
    if (deleted > 0) log.info({ deleted, olderThan: new Date(before).toISOString(), days: deps.days }, "deleted old job log lines");
    return deleted;
  };
  const run = () => void pruneOnce().catch((err) => log.warn({ err }, "could not delete old job log lines; will try again"));
  const first = setTimeout(run, 5_000);
  const timer = setInterval(run, deps.everyMs ?? 3600_000);
  first.unref();
  timer.unref();
  return {
    pruneOnce,
    stop() {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
