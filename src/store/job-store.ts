import { randomBytes } from "node:crypto";
import type { Kysely, Selectable } from "kysely";
import type { Database, JobsTable } from "./schema.js";
import { onEmbeddedSqlite } from "./open-store.js";
import type { Database as SqliteDatabase } from "better-sqlite3";
import { claimLeased } from "./claim-leased.js";
import type { Job, NewJob, StepRecord } from "../jobs/types.js";
import { assertTransition, isActive, isTerminal, type JobState } from "../jobs/state.js";
import { addToOutbox, type NewOutboxEntry, type OutboxDeliverer } from "./outbox-store.js";

type JobPatch = Partial<
  Pick<
    Job,
    | "config"
    | "priority"
    | "backend"
    | "baseSha"
    | "checkRunId"
    | "commentId"
    | "prCheckRunId"
    | "branch"
    | "headSha"
    | "prNumber"
    | "prUrl"
    | "worker"
    | "result"
    | "steps"
    | "attempts"
    | "deadlineAt"
    | "startedAt"
    | "finishedAt"
    | "computeSeconds"
    | "costUsd"
    | "message"
    | "options"
    | "context"
    | "prHeadRef"
    | "cancelRequestedBy"
  >
>;

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

/** Job ids name VMs and folders: lowercase, starts with a letter, 12 characters. */
const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const ID_BYTES = 11;
/**
 * Random bytes for job ids, drawn from the kernel 4 KB at a time: a randomBytes call per id cost
 * ~40 µs, a twentieth of a webhook delivery's CPU (bench/ingest.ts profile), and the cost is per
 * call, not per byte. Each byte is used once.
 */
const idEntropy = { bytes: Buffer.alloc(0), at: 0 };

export function newJobId(): string {
  if (idEntropy.at + ID_BYTES > idEntropy.bytes.length) {
    idEntropy.bytes = randomBytes(4096);
    idEntropy.at = 0;
  }
  let id = "j";
  for (let i = 0; i < ID_BYTES; i++) id += ID_ALPHABET[idEntropy.bytes[idEntropy.at + i]! % ID_ALPHABET.length];
  idEntropy.at += ID_BYTES;
  return id;
}

export const INITIAL_STEPS: StepRecord[] = [
  { name: "queued", status: "pending" },
  { name: "worker", status: "pending" },
  { name: "clone", status: "pending" },
  { name: "agent", status: "pending" },
  { name: "commit", status: "pending" },
  { name: "push", status: "pending" },
  { name: "pull request", status: "pending" },
];

function activeKey(repoId: number, number: number): string {
  return `${repoId}#${number}`;
}

export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === "SQLITE_CONSTRAINT_UNIQUE" || e?.code === "23505";
}

function toJob(row: Selectable<JobsTable>): Job {
  return {
    id: row.id,
    deliveryId: row.delivery_id,
    installationId: Number(row.installation_id),
    repoId: Number(row.repo_id),
    owner: row.owner,
    repo: row.repo,
    number: row.number,
    kind: row.kind as Job["kind"],
    trigger: row.trigger as Job["trigger"],
    requester: row.requester,
    title: row.title,
    body: row.body,
    cloneUrl: row.clone_url,
    defaultBranch: row.default_branch,
    instructions: row.instructions,
    config: row.config_json ? JSON.parse(row.config_json) : null,
    state: row.state as JobState,
    priority: row.priority,
    backend: row.backend,
    baseSha: row.base_sha,
    checkRunId: row.check_run_id === null ? null : Number(row.check_run_id),
    commentId: row.comment_id === null ? null : Number(row.comment_id),
    prCheckRunId: row.pr_check_run_id === null ? null : Number(row.pr_check_run_id),
    branch: row.branch,
    headSha: row.head_sha,
    prNumber: row.pr_number,
    prUrl: row.pr_url,
    worker: row.worker_json ? JSON.parse(row.worker_json) : null,
    result: row.result_json ? JSON.parse(row.result_json) : null,
    steps: JSON.parse(row.steps_json),
    attempts: row.attempts,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at === null ? null : Number(row.lease_expires_at),
    leaseEpoch: Number(row.lease_epoch ?? 0),
    deadlineAt: row.deadline_at === null ? null : Number(row.deadline_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    startedAt: row.started_at === null ? null : Number(row.started_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    computeSeconds: row.compute_seconds,
    costUsd: row.cost_usd,
    message: row.message,
    options: row.options_json ? JSON.parse(row.options_json) : {},
    triggerCommentId: row.trigger_comment_id === null ? null : Number(row.trigger_comment_id),
    context: row.context_json ? JSON.parse(row.context_json) : null,
    prHeadRef: row.pr_head_ref,
    retryOf: row.retry_of,
    cancelRequestedBy: row.cancel_requested_by,
  };
}

function patchToRow(patch: JobPatch): Partial<JobsTable> {
  const row: Partial<JobsTable> = {};
  const set = <K extends keyof JobsTable>(k: K, v: JobsTable[K]) => {
    row[k] = v;
  };
  if ("config" in patch) set("config_json", patch.config ? JSON.stringify(patch.config) : null);
  if (patch.priority !== undefined) set("priority", patch.priority);
  if (patch.backend !== undefined) set("backend", patch.backend);
  if ("baseSha" in patch) set("base_sha", patch.baseSha ?? null);
  if ("checkRunId" in patch) set("check_run_id", patch.checkRunId ?? null);
  if ("commentId" in patch) set("comment_id", patch.commentId ?? null);
  if ("prCheckRunId" in patch) set("pr_check_run_id", patch.prCheckRunId ?? null);
  if ("branch" in patch) set("branch", patch.branch ?? null);
  if ("headSha" in patch) set("head_sha", patch.headSha ?? null);
  if ("prNumber" in patch) set("pr_number", patch.prNumber ?? null);
  if ("prUrl" in patch) set("pr_url", patch.prUrl ?? null);
  if ("worker" in patch) set("worker_json", patch.worker ? JSON.stringify(patch.worker) : null);
  if ("result" in patch) set("result_json", patch.result ? JSON.stringify(patch.result) : null);
  if (patch.steps !== undefined) set("steps_json", JSON.stringify(patch.steps));
  if (patch.attempts !== undefined) set("attempts", patch.attempts);
  if ("deadlineAt" in patch) set("deadline_at", patch.deadlineAt ?? null);
  if ("startedAt" in patch) set("started_at", patch.startedAt ?? null);
  if ("finishedAt" in patch) set("finished_at", patch.finishedAt ?? null);
  if ("computeSeconds" in patch) set("compute_seconds", patch.computeSeconds ?? null);
  if ("costUsd" in patch) set("cost_usd", patch.costUsd ?? null);
  if ("message" in patch) set("message", patch.message ?? null);
  if (patch.options !== undefined) set("options_json", JSON.stringify(patch.options));
  if ("context" in patch) set("context_json", patch.context ? JSON.stringify(patch.context) : null);
  if ("prHeadRef" in patch) set("pr_head_ref", patch.prHeadRef ?? null);
  if ("cancelRequestedBy" in patch) set("cancel_requested_by", patch.cancelRequestedBy ?? null);
  return row;
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
    const row = {
      id: newJobId(),
      delivery_id: input.deliveryId,
      installation_id: input.installationId,
      repo_id: input.repoId,
      owner: input.owner,
      repo: input.repo,
      number: input.number,
      kind: input.kind,
      trigger: input.trigger,
      requester: input.requester,
      title: input.title,
      body: input.body,
      clone_url: input.cloneUrl,
      default_branch: input.defaultBranch,
      instructions: input.instructions,
      config_json: null,
      state: "received",
      active_key: null,
      priority: 0,
      backend: defaults.backend,
      steps_json: JSON.stringify(INITIAL_STEPS),
      attempts: 0,
      created_at: now,
      updated_at: now,
      options_json: JSON.stringify(input.options ?? {}),
      trigger_comment_id: input.triggerCommentId ?? null,
      retry_of: input.retryOf ?? null,
      context_json: input.context ? JSON.stringify(input.context) : null,
    };
    const event = { at: now, kind: "received", data_json: JSON.stringify({ deliveryId: input.deliveryId, trigger: input.trigger }) };
    const embedded = await onEmbeddedSqlite(this.db, (sqlite) => insertReceivedSqlite(sqlite, row)(row, event));
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
   * logs the change. Entering an active state takes the issue's one active slot: a second job on the
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

/**
 * insertReceived on the embedded store: the same statements as the Kysely path, prepared once per
 * database and run in one better-sqlite3 transaction (src/store/open-store.ts, onEmbeddedSqlite).
 */
const receivedStatements = new WeakMap<
  SqliteDatabase,
  (row: Record<string, unknown>, event: { at: number; kind: string; data_json: string }) => { created: boolean; row: unknown }
>();

/** The columns are `row`'s keys, read when the statements are prepared (once per database). */
function insertReceivedSqlite(sqlite: SqliteDatabase, row: Record<string, unknown>) {
  let insert = receivedStatements.get(sqlite);
  if (insert) return insert;
  const columns = Object.keys(row);
  const job = sqlite.prepare(
    `insert into "jobs" (${columns.map((c) => `"${c}"`).join(", ")}) values (${columns.map((c) => `@${c}`).join(", ")}) on conflict ("delivery_id") do nothing returning *`,
  );
  const existing = sqlite.prepare(`select * from "jobs" where "delivery_id" = ?`);
  const jobEvent = sqlite.prepare(`insert into "job_events" ("job_id", "at", "kind", "data_json") values (?, ?, ?, ?)`);
  insert = sqlite.transaction((row: Record<string, unknown>, event: { at: number; kind: string; data_json: string }) => {
    const inserted = job.get(row);
    if (!inserted) return { created: false, row: existing.get(row.delivery_id) };
    jobEvent.run(row.id, event.at, event.kind, event.data_json);
    return { created: true, row: inserted };
  });
  receivedStatements.set(sqlite, insert);
  return insert;
}
