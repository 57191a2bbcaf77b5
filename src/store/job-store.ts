import type { Kysely } from "kysely";
import type { Database } from "./schema.js";
import { isEmbeddedSecondConnection, onEmbeddedSqlite } from "./open-store.js";
import { claimLeased } from "./claim-leased.js";
import { activeKey, patchToRow, receivedRow, toJob, type JobPatch } from "./job-rows.js";
import { insertReceivedSqlite, recordInTurn } from "./insert-received-sqlite.js";
import { newJobId } from "./new-job-id.js";
import type { Job, NewJob, StepRecord } from "../jobs/types.js";
import { assertTransition, isActive, isTerminal, type JobState } from "../jobs/state.js";
import { addToOutbox, type NewOutboxEntry, type OutboxDeliverer } from "./outbox-store.js";

/** What a state change may carry besides its patch. */
export interface TransitionExtras {
  /** Outbox rows written in the same transaction: effects the new state calls for (src/store/outbox-store.ts). */
  effects?: readonly NewOutboxEntry[];
  /** The process that delivers them at once (it holds their lease); without it, the next sweep does. */
  deliverer?: OutboxDeliverer;
}

/** A state change lost a race (another process moved the job first); callers re-read and move on. */
export class StaleStateError extends Error {}

/**
 * A write by a process whose lease on the job is gone (expired and claimed again). A kind of
 * stale state, so callers that move on after a lost race do the same here; the runner branches on
 * it to leave the worker and the token to the new holder.
 */
export class LeaseLostError extends StaleStateError {}

/** The claim a process holds on a job: its writes to the job are refused once it no longer holds it. */
export interface JobLease {
  jobId: string;
  owner: string;
  epoch: number;
}

/** Whether a write broke a unique index (SQLite's code, PostgreSQL's): for a job, the one active slot. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === "SQLITE_CONSTRAINT_UNIQUE" || e?.code === "23505";
}

/**
 * The jobs table and its event log. Every method is one SQL statement or one short transaction,
 * written in the subset of SQL that SQLite and PostgreSQL share; only the claim differs (claim-leased.ts).
 */
export class JobStore {
  constructor(
    readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
    /** Set on the view fencedTo() returns: writes to that job check the lease first. */
    private readonly fence?: JobLease,
  ) {}

  /**
   * The same store, with every update and state change of `job` fenced on the lease this process
   * claimed it with (owner and epoch): once the lease was taken by someone else, they throw
   * LeaseLostError and change nothing. The scheduler hands each claimed phase such a view.
   */
  fencedTo(job: Pick<Job, "id" | "leaseOwner" | "leaseEpoch">): JobStore {
    if (!job.leaseOwner) throw new Error(`job ${job.id} is not claimed; there is no lease to fence on`);
    return new JobStore(this.db, this.now, { jobId: job.id, owner: job.leaseOwner, epoch: job.leaseEpoch });
  }

  /** The lease this view is fenced on, if any. */
  get lease(): JobLease | undefined {
    return this.fence;
  }

  /** Whether this view's lease is still the job's (always true for an unfenced store). */
  async holdsLease(): Promise<boolean> {
    if (!this.fence) return true;
    const row = await this.db.selectFrom("jobs").select(["lease_owner", "lease_epoch"]).where("id", "=", this.fence.jobId).executeTakeFirst();
    return row?.lease_owner === this.fence.owner && Number(row.lease_epoch) === this.fence.epoch;
  }

  private fenceOf(id: string): JobLease | undefined {
    return this.fence?.jobId === id ? this.fence : undefined;
  }

  private async leaseLost(id: string): Promise<LeaseLostError | undefined> {
    const fence = this.fenceOf(id);
    if (!fence || (await this.holdsLease())) return undefined;
    return new LeaseLostError(`job ${id}: this process's lease (${fence.owner}, epoch ${fence.epoch}) was taken over; the write was refused`);
  }

  /** Records a delivery as a `received` job. A delivery id seen before returns `created: false`. */
  async insertReceived(input: NewJob, defaults: { backend: string }): Promise<{ created: boolean; job: Job }> {
    const now = this.now();
    const row = receivedRow(newJobId(), input, defaults.backend, now);
    const event = { at: now, kind: "received", data_json: JSON.stringify({ deliveryId: input.deliveryId, trigger: input.trigger }) };
    // The webhook thread's connection records a turn's deliveries in one commit (recordInTurn).
    const embedded = isEmbeddedSecondConnection(this.db)
      ? await recordInTurn(this.db, row, event)
      : await onEmbeddedSqlite(this.db, (sqlite) => insertReceivedSqlite(sqlite, row).one(row, event));
    if (embedded) return { created: embedded.created, job: toJob(embedded.row as never) };
    // One transaction, one commit per delivery: the row and its first event together.
    return this.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto("jobs")
        .values(row as never)
        .onConflict((oc) => oc.column("delivery_id").doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!inserted) {
        const existing = await trx.selectFrom("jobs").selectAll().where("delivery_id", "=", input.deliveryId).executeTakeFirstOrThrow();
        return { created: false, job: toJob(existing) };
      }
      await trx
        .insertInto("job_events")
        .values({ job_id: inserted.id, ...event })
        .execute();
      return { created: true, job: toJob(inserted) };
    });
  }

  async get(id: string): Promise<Job | undefined> {
    const row = await this.db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toJob(row) : undefined;
  }

  async getOrThrow(id: string): Promise<Job> {
    const job = await this.get(id);
    if (!job) throw new Error(`job ${id} not found`);
    return job;
  }

  /** The active job on an issue or PR, if any. */
  async activeFor(repoId: number, number: number): Promise<Job | undefined> {
    const row = await this.db.selectFrom("jobs").selectAll().where("active_key", "=", activeKey(repoId, number)).executeTakeFirst();
    return row ? toJob(row) : undefined;
  }

  /** Jobs recorded on an issue or PR and not yet admitted (`received`): among them, the one waiting for the active job. */
  async receivedFor(repoId: number, number: number): Promise<Job[]> {
    const rows = await this.db
      .selectFrom("jobs")
      .selectAll()
      .where("repo_id", "=", repoId)
      .where("number", "=", number)
      .where("state", "=", "received")
      .orderBy("created_at", "asc")
      .execute();
    return rows.map(toJob);
  }

  /** The most recent job on an issue or PR, whatever its state. */
  async lastFor(repoId: number, number: number): Promise<Job | undefined> {
    const row = await this.db
      .selectFrom("jobs")
      .selectAll()
      .where("repo_id", "=", repoId)
      .where("number", "=", number)
      .where("state", "!=", "rejected")
      .orderBy("created_at", "desc")
      .limit(1)
      .executeTakeFirst();
    return row ? toJob(row) : undefined;
  }

  /** Jobs of a repository created since `since` (the month so far), for `/agent cost`. */
  async repoJobsSince(repoId: number, since: number): Promise<Job[]> {
    const rows = await this.db
      .selectFrom("jobs")
      .selectAll()
      .where("repo_id", "=", repoId)
      .where("created_at", ">=", since)
      .where("state", "!=", "rejected")
      .orderBy("created_at", "asc")
      .execute();
    return rows.map(toJob);
  }

  async list(filter: { state?: JobState; limit?: number } = {}): Promise<Job[]> {
    let q = this.db
      .selectFrom("jobs")
      .selectAll()
      .orderBy("created_at", "desc")
      .limit(filter.limit ?? 100);
    if (filter.state) q = q.where("state", "=", filter.state);
    return (await q.execute()).map(toJob);
  }

  async countByState(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom("jobs")
      .select((eb) => ["state", eb.fn.countAll().as("n")])
      .groupBy("state")
      .execute();
    // pg returns count(*) as a string, SQLite as a number.
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  /**
   * Claims up to `limit` jobs in `states` whose lease is free or expired, highest priority first,
   * then oldest, each with a new lease epoch. Two replicas never get the same job (claim-leased.ts).
   */
  async claim(states: readonly JobState[], owner: string, leaseMs: number, limit: number): Promise<Job[]> {
    const rows = await claimLeased(
      this.db,
      {
        table: "jobs",
        key: "id",
        states,
        orderBy: [["priority", "desc"]],
        owner,
        leaseMs,
        now: this.now(),
        also: (eb) => ({ lease_epoch: eb("lease_epoch", "+", 1) }),
      },
      limit,
    );
    return rows.map(toJob);
  }

  /** Extends the lease; false when it is no longer this owner's (with `epoch`: this claim's). */
  async renewLease(id: string, owner: string, leaseMs: number, epoch?: number): Promise<boolean> {
    const now = this.now();
    let q = this.db
      .updateTable("jobs")
      .set({ lease_expires_at: now + leaseMs })
      .where("id", "=", id)
      .where("lease_owner", "=", owner);
    if (epoch !== undefined) q = q.where("lease_epoch", "=", epoch);
    const res = await q.executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async releaseLease(id: string, owner: string, epoch?: number): Promise<void> {
    let q = this.db.updateTable("jobs").set({ lease_owner: null, lease_expires_at: null }).where("id", "=", id).where("lease_owner", "=", owner);
    if (epoch !== undefined) q = q.where("lease_epoch", "=", epoch);
    await q.execute();
  }

  /**
   * Moves a job from `from` to `to` (checked against the state machine) with an optional patch, and
   * logs the change. Entering an active state takes the one active slot: a second job on the
   * same issue fails with a unique violation (see isUniqueViolation).
   */
  async transition(id: string, from: JobState, to: JobState, patch: JobPatch = {}, note?: string, extras: TransitionExtras = {}): Promise<Job> {
    assertTransition(from, to);
    const now = this.now();
    // Only what the change needs of the row as it is (not the whole job: its discussion snapshot
    // and JSON columns would be parsed for nothing); the changed row comes back from the update.
    const current = await this.db.selectFrom("jobs").select(["repo_id", "number", "steps_json"]).where("id", "=", id).executeTakeFirst();
    if (!current) throw new Error(`job ${id} not found`);
    // A job that ends mid-step (stopped, timed out, failed) must not show that step as running.
    if (isTerminal(to) && patch.steps === undefined) {
      const steps = JSON.parse(current.steps_json) as StepRecord[];
      if (steps.some((st) => st.status === "running")) {
        patch = {
          ...patch,
          steps: steps.map((st) => (st.status === "running" ? { ...st, status: "failed", finishedAt: now, detail: st.detail ?? to.replace("_", " ") } : st)),
        };
      }
    }
    const fence = this.fenceOf(id);
    const write = async (db: Kysely<Database>): Promise<Job> => {
      const row = await db
        .updateTable("jobs")
        .set({
          ...patchToRow(patch),
          state: to,
          active_key: isActive(to) ? activeKey(Number(current.repo_id), current.number) : null,
          updated_at: now,
        })
        .where("id", "=", id)
        .where("state", "=", from)
        .$call((q) => (fence ? q.where("lease_owner", "=", fence.owner).where("lease_epoch", "=", fence.epoch) : q))
        .returningAll()
        .executeTakeFirst();
      if (!row) {
        throw (await this.leaseLost(id)) ?? new StaleStateError(`job ${id} is no longer ${from}`);
      }
      await db
        .insertInto("job_events")
        .values({ job_id: id, at: now, kind: "state", data_json: JSON.stringify({ from, to, ...(note ? { note } : {}) }) })
        .execute();
      if (extras.effects?.length) await addToOutbox(db, extras.effects, now, extras.deliverer);
      return toJob(row);
    };
    // With effects, one transaction: the new state and what it calls for commit together.
    if (extras.effects?.length) return this.db.transaction().execute((trx) => write(trx));
    return write(this.db);
  }

  /** Writes a patch; on a fenced view, only while its lease holds (else LeaseLostError, nothing written). */
  async update(id: string, patch: JobPatch): Promise<Job> {
    const fence = this.fenceOf(id);
    // The written row comes back from the update itself (RETURNING, on SQLite and PostgreSQL).
    const row = await this.db
      .updateTable("jobs")
      .set({ ...patchToRow(patch), updated_at: this.now() })
      .where("id", "=", id)
      .$call((q) => (fence ? q.where("lease_owner", "=", fence.owner).where("lease_epoch", "=", fence.epoch) : q))
      .returningAll()
      .executeTakeFirst();
    if (!row) throw (await this.leaseLost(id)) ?? new Error(`job ${id} not found`);
    return toJob(row);
  }

  /** Whether the job's event log holds an `intent` to create `effect` (src/pipeline/intend-effect.ts). */
  async hasIntent(jobId: string, effect: string): Promise<boolean> {
    const row = await this.db
      .selectFrom("job_events")
      .select("id")
      .where("job_id", "=", jobId)
      .where("kind", "=", "intent")
      .where("data_json", "=", JSON.stringify({ effect }))
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async appendEvent(jobId: string, kind: string, data?: unknown): Promise<void> {
    await this.db
      .insertInto("job_events")
      .values({ job_id: jobId, at: this.now(), kind, data_json: data === undefined ? null : JSON.stringify(data) })
      .execute();
  }

  async events(jobId: string): Promise<{ at: number; kind: string; data: unknown }[]> {
    const rows = await this.db.selectFrom("job_events").selectAll().where("job_id", "=", jobId).orderBy("id").execute();
    return rows.map((r) => ({ at: Number(r.at), kind: r.kind, data: r.data_json ? JSON.parse(r.data_json) : null }));
  }

  /**
   * The job's worker token, sealed (src/secrets/seal.ts), kept while the token may be in use so a
   * controller restarted after a crash can revoke it; `null` once it is revoked. Never in clear.
   */
  async setSealedWorkerToken(id: string, sealed: string | null): Promise<void> {
    await this.db.updateTable("jobs").set({ worker_token_sealed: sealed }).where("id", "=", id).execute();
  }

  async sealedWorkerToken(id: string): Promise<string | null> {
    const row = await this.db.selectFrom("jobs").select("worker_token_sealed").where("id", "=", id).executeTakeFirst();
    return row?.worker_token_sealed ?? null;
  }
}
