import { EventEmitter } from "node:events";
import type { Kysely } from "kysely";
import type { Database } from "../store/schema.js";

export interface LogLine {
  id: number;
  jobId: string;
  at: number;
  stream: string;
  line: string;
}

const FLUSH_MS = 250;
const MAX_LINE = 4000;
/** Rows per insert: 4 parameters each, well under SQLite's and PostgreSQL's parameter limits. */
const INSERT_CHUNK = 500;

/**
 * Every job's full log, redacted by the caller before it gets here: kept in the store for the log
 * page and pruned after a retention time, and pushed to live subscribers (the page's SSE stream)
 * as it is written. Lines are buffered and written in batches, so a chatty agent costs one insert
 * statement per quarter second, not one per line.
 */
export class JobLog {
  private readonly pending: Omit<LogLine, "id">[] = [];
  private readonly bus = new EventEmitter();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
  ) {
    this.bus.setMaxListeners(0);
  }

  append(jobId: string, stream: string, line: string): void {
    this.pending.push({ jobId, at: this.now(), stream, line: line.slice(0, MAX_LINE) });
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
      this.timer.unref?.();
    }
  }

  /** Writes what is buffered; subscribers hear each line with its stored id. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending.splice(0);
    const run = this.writing.then(async () => {
      // One statement per chunk, not per line: against PostgreSQL over a network a round trip per
      // line would fall behind a chatty agent. Ids come from a sequence (PostgreSQL) or rowid
      // (SQLite) in the order the rows are listed, so the sorted ids pair with the entries in order.
      for (let i = 0; i < batch.length; i += INSERT_CHUNK) {
        const chunk = batch.slice(i, i + INSERT_CHUNK);
        const rows = await this.db
          .insertInto("job_logs")
          .values(chunk.map((entry) => ({ job_id: entry.jobId, at: entry.at, stream: entry.stream, line: entry.line })))
          .returning("id")
          .execute();
        const ids = rows.map((r) => Number(r.id)).sort((a, b) => a - b);
        chunk.forEach((entry, k) => this.bus.emit(entry.jobId, { ...entry, id: ids[k]! }));
      }
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  async read(jobId: string, afterId = 0, limit = 5000): Promise<LogLine[]> {
    const rows = await this.db.selectFrom("job_logs").selectAll().where("job_id", "=", jobId).where("id", ">", afterId).orderBy("id").limit(limit).execute();
    return rows.map((r) => ({ id: Number(r.id), jobId: r.job_id, at: Number(r.at), stream: r.stream, line: r.line }));
  }

  /** Live lines of one job; returns the unsubscribe function. */
  subscribe(jobId: string, listener: (line: LogLine) => void): () => void {
    this.bus.on(jobId, listener);
    return () => this.bus.off(jobId, listener);
  }

  /** Deletes lines older than `before` (epoch ms); returns how many went. */
  async prune(before: number): Promise<number> {
    const res = await this.db.deleteFrom("job_logs").where("at", "<", before).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
