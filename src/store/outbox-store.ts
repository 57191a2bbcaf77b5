import type { Kysely, Selectable } from "kysely";
import type { Database, OutboxTable } from "./schema.js";
import { claimLeased } from "./claim-leased.js";

/**
 * What an outbox row asks for. Each is safe to deliver again: GitHub keeps one reaction per
 * person and content, a comment carries a marker it is found by, a revoke of a token already
 * revoked is done, and a status publication is a PATCH of the whole view.
 */
export type OutboxEffect =
  /** 👀 on the comment that asked (`commentId`), or on the issue for a label. */
  | {
      kind: "reaction";
      owner: string;
      repo: string;
      issueNumber: number;
      commentId: number | null;
      /** An inline review comment that asked. */ reviewCommentId?: number;
    }
  /** A reply in a pull request review thread (`commentId`: its first comment); found by its marker as a comment is. */
  | { kind: "review-reply"; owner: string; repo: string; pullNumber: number; commentId: number; body: string }
  /** A comment on the issue or PR; `body` is redacted before it is stored. */
  | { kind: "comment"; owner: string; repo: string; issueNumber: number; body: string }
  /** Revoke the job's kept (sealed) worker token, if there still is one. */
  | { kind: "revoke-token"; jobId: string }
  /** Publish the job's status comment and check run as the job row says now. */
  | { kind: "final-status"; jobId: string }
  /** Bill the worker the job had when it was ended (until `endedAt`), and close its reservation. */
  | { kind: "bill"; jobId: string; worker: { id: string; createdAt: number; meta: Record<string, string> } | null; endedAt: number };

export interface NewOutboxEntry {
  /** Unique per effect: the same key written twice is one effect. */
  key: string;
  installationId: number;
  jobId: string | null;
  effect: OutboxEffect;
}

export interface OutboxEntry extends NewOutboxEntry {
  state: "pending" | "done";
  tries: number;
  createdAt: number;
  lastError: string | null;
}

/** Who delivers a row right after writing it: the writer holds its lease, so no sweep races it. */
export interface OutboxDeliverer {
  owner: string;
  leaseMs: number;
}

function toEntry(r: Selectable<OutboxTable>): OutboxEntry {
  return {
    key: r.key,
    installationId: Number(r.installation_id),
    jobId: r.job_id,
    effect: JSON.parse(r.payload_json),
    state: r.state as OutboxEntry["state"],
    tries: r.tries,
    createdAt: Number(r.created_at),
    lastError: r.last_error,
  };
}

/**
 * Writes outbox rows, in the caller's transaction (`db` may be one): the state change and the
 * effects it calls for commit together or not at all. A key already there is left as it is.
 */
export async function addToOutbox(db: Kysely<Database>, entries: readonly NewOutboxEntry[], now: number, deliverer?: OutboxDeliverer): Promise<void> {
  for (const e of entries) {
    await db
      .insertInto("outbox")
      .values({
        key: e.key,
        job_id: e.jobId,
        installation_id: e.installationId,
        kind: e.effect.kind,
        payload_json: JSON.stringify(e.effect),
        state: "pending",
        tries: 0,
        lease_owner: deliverer?.owner ?? null,
        lease_expires_at: deliverer ? now + deliverer.leaseMs : null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column("key").doNothing())
      .execute();
  }
}

/**
 * The outbox table. Delivering a row is: `begin` (or `claim`) it, which counts the try and takes
 * its lease; do the effect; `finish` it. A process that dies in between leaves the lease to
 * expire, and the next sweep takes the row again with its try counted.
 */
export class OutboxStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes one row to deliver it now: a fresh row this owner wrote (tries 0), or any row whose lease
   * is free or expired. Undefined when it is done or someone else is delivering it.
   */
  async begin(key: string, owner: string, leaseMs: number): Promise<OutboxEntry | undefined> {
    const now = this.now();
    const row = await this.db
      .updateTable("outbox")
      .set((eb) => ({ tries: eb("tries", "+", 1), lease_owner: owner, lease_expires_at: now + leaseMs, updated_at: now }))
      .where("key", "=", key)
      .where("state", "=", "pending")
      .where((eb) =>
        eb.or([eb.and([eb("lease_owner", "=", owner), eb("tries", "=", 0)]), eb("lease_expires_at", "is", null), eb("lease_expires_at", "<", now)]),
      )
      .returningAll()
      .executeTakeFirst();
    return row ? toEntry(row) : undefined;
  }

  /** The sweep: up to `limit` pending rows nobody holds (their writer died, or never delivered them), oldest first. */
  async claim(owner: string, leaseMs: number, limit: number): Promise<OutboxEntry[]> {
    const rows = await claimLeased(
      this.db,
      { table: "outbox", key: "key", states: ["pending"], owner, leaseMs, now: this.now(), also: (eb) => ({ tries: eb("tries", "+", 1) }) },
      limit,
    );
    return rows.map(toEntry);
  }

  async finish(key: string, owner: string): Promise<void> {
    await this.db
      .updateTable("outbox")
      .set({ state: "done", lease_owner: null, lease_expires_at: null, last_error: null, updated_at: this.now() })
      .where("key", "=", key)
      .where("lease_owner", "=", owner)
      .execute();
  }

  /** A failed delivery keeps its lease until it expires: that is the back-off before the sweep tries again. */
  async failed(key: string, error: string): Promise<void> {
    await this.db
      .updateTable("outbox")
      .set({ last_error: error.slice(0, 500), updated_at: this.now() })
      .where("key", "=", key)
      .execute();
  }

  async list(filter: { jobId?: string; state?: OutboxEntry["state"] } = {}): Promise<OutboxEntry[]> {
    let q = this.db.selectFrom("outbox").selectAll().orderBy("created_at").orderBy("key");
    if (filter.jobId) q = q.where("job_id", "=", filter.jobId);
    if (filter.state) q = q.where("state", "=", filter.state);
    return (await q.execute()).map(toEntry);
  }
}

/**
 * What ending a job outside its run (a person's stop, the reaper, the ops CLI) leaves to do on
 * GitHub, with the token and in the ledger: revoke the token it may still hold, bill the worker it
 * had until `endedAt` (whoever ends it destroys that worker right after), publish its final status.
 * In this order: a sweep takes rows by time, then by key, and the status shows the bill.
 */
export function jobEndedEffects(
  job: { id: string; installationId: number; worker?: { id: string; createdAt: number; meta: Record<string, string> } | null },
  endedAt: number,
): NewOutboxEntry[] {
  const worker = job.worker ? { id: job.worker.id, createdAt: job.worker.createdAt, meta: job.worker.meta } : null;
  return [
    { key: `bill:${job.id}`, installationId: job.installationId, jobId: job.id, effect: { kind: "bill", jobId: job.id, worker, endedAt } },
    { key: `final-status:${job.id}`, installationId: job.installationId, jobId: job.id, effect: { kind: "final-status", jobId: job.id } },
    { key: `revoke-token:${job.id}`, installationId: job.installationId, jobId: job.id, effect: { kind: "revoke-token", jobId: job.id } },
  ];
}

/** The keys jobEndedEffects writes for a job, to deliver them at once. */
export function jobEndedKeys(jobId: string): string[] {
  return [`bill:${jobId}`, `final-status:${jobId}`, `revoke-token:${jobId}`];
}
