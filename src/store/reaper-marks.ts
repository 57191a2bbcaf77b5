import type { Kysely } from "kysely";
import type { Worker } from "../backends/types.js";

/**
 * - `orphan`: a worker that no live job owned when the reaper last looked; destroyed if the next
 *   pass finds it still unowned.
 * - `vanished`: a provisioning/running job whose worker was not in its backend's listing; failed if
 *   the next pass still misses it (one listing can race a create that was just finishing).
 */
export type ReaperMarkKind = "orphan" | "vanished";

export interface ReaperMark {
  key: string;
  kind: ReaperMarkKind;
  backend: string;
  workerId: string | null;
  jobId: string;
  markedAt: number;
  worker: Worker | null;
}

export interface ReaperMarksTable {
  key: string;
  kind: string;
  backend: string;
  worker_id: string | null;
  job_id: string;
  marked_at: number;
  worker_json: string | null;
}

/** The mark's key: one per worker for orphans, one per job for vanished workers. */
export function reaperMarkKey(kind: ReaperMarkKind, backend: string, id: string): string {
  return `${kind}:${backend}:${id}`;
}

/** The `reaper_marks` table (migration 002). Kept apart from JobStore: only the reaper writes it. */
export class ReaperMarkStore {
  private readonly db: Kysely<{ reaper_marks: ReaperMarksTable }>;

  constructor(db: Kysely<any>) {
    this.db = db.withTables<{ reaper_marks: ReaperMarksTable }>();
  }

  async list(): Promise<ReaperMark[]> {
    const rows = await this.db.selectFrom("reaper_marks").selectAll().orderBy("marked_at").execute();
    return rows.map((r) => ({
      key: r.key,
      kind: r.kind as ReaperMarkKind,
      backend: r.backend,
      workerId: r.worker_id,
      jobId: r.job_id,
      markedAt: Number(r.marked_at),
      worker: r.worker_json ? (JSON.parse(r.worker_json) as Worker) : null,
    }));
  }

  /** Sets a mark unless one is there already (the first sighting's time is the one that counts). */
  async mark(mark: Omit<ReaperMark, "key">): Promise<void> {
    const id = mark.kind === "orphan" ? (mark.workerId ?? mark.jobId) : mark.jobId;
    await this.db
      .insertInto("reaper_marks")
      .values({
        key: reaperMarkKey(mark.kind, mark.backend, id),
        kind: mark.kind,
        backend: mark.backend,
        worker_id: mark.workerId,
        job_id: mark.jobId,
        marked_at: mark.markedAt,
        worker_json: mark.worker ? JSON.stringify(mark.worker) : null,
      })
      .onConflict((oc) => oc.column("key").doNothing())
      .execute();
  }

  async unmark(key: string): Promise<void> {
    await this.db.deleteFrom("reaper_marks").where("key", "=", key).execute();
  }
}
