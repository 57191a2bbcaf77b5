import type { Kysely, Selectable } from "kysely";
import type { Database, RequestsTable } from "./schema.js";
import { newJobId } from "./new-job-id.js";
import { claimLeased } from "./claim-leased.js";
import type { JobKind } from "../jobs/types.js";
import { addToOutbox, type NewOutboxEntry, type OutboxDeliverer } from "./outbox-store.js";

export type RequestVerb = "stop" | "retry" | "status" | "cost" | "help" | "unknown" | "bad_flag" | "fork";

/** A command or button click to answer: everything but a new job, which is a job of its own. */
export interface AgentRequest {
  id: string;
  deliveryId: string;
  installationId: number;
  repoId: number;
  owner: string;
  repo: string;
  number: number;
  kind: JobKind;
  /** `web`: the Cancel button on the job page, clicked by `sender` while signed in. */
  source: "comment" | "check_run" | "web";
  verb: RequestVerb;
  sender: string;
  args: {
    /** The comment to react to and quote (source `comment`). */
    commentId?: number;
    line?: string;
    /** The job a button belongs to (source `check_run`). */
    jobId?: string;
    word?: string;
    suggestion?: string;
    message?: string;
  };
  state: "pending" | "done";
  createdAt: number;
}

function toRequest(row: Selectable<RequestsTable>): AgentRequest {
  return {
    id: row.id,
    deliveryId: row.delivery_id,
    installationId: Number(row.installation_id),
    repoId: Number(row.repo_id),
    owner: row.owner,
    repo: row.repo,
    number: row.number,
    kind: row.kind as JobKind,
    source: row.source as AgentRequest["source"],
    verb: row.verb as RequestVerb,
    sender: row.sender,
    args: JSON.parse(row.args_json),
    state: row.state as AgentRequest["state"],
    createdAt: Number(row.created_at),
  };
}

/** The requests table: recorded by handlers, claimed with a lease, answered once. */
export class RequestStore {
  constructor(
    readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
  ) {}

  async insert(input: Omit<AgentRequest, "id" | "state" | "createdAt">): Promise<{ created: boolean }> {
    const now = this.now();
    const res = await this.db
      .insertInto("requests")
      .values({
        id: newJobId().replace(/^j/, "r"),
        delivery_id: input.deliveryId,
        installation_id: input.installationId,
        repo_id: input.repoId,
        owner: input.owner,
        repo: input.repo,
        number: input.number,
        kind: input.kind,
        source: input.source,
        verb: input.verb,
        sender: input.sender,
        args_json: JSON.stringify(input.args),
        state: "pending",
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column("delivery_id").doNothing())
      .executeTakeFirst();
    return { created: Number(res.numInsertedOrUpdatedRows ?? 0n) === 1 };
  }

  /** Claims pending requests whose lease is free or expired, oldest first (claim-leased.ts). */
  async claim(owner: string, leaseMs: number, limit: number): Promise<AgentRequest[]> {
    const rows = await claimLeased(this.db, { table: "requests", key: "id", states: ["pending"], owner, leaseMs, now: this.now() }, limit);
    return rows.map(toRequest);
  }

  /**
   * Marks a request answered, and writes its reply to the outbox in the same transaction: a
   * process that dies after this has its reply delivered by the sweep, and one that dies before
   * it answers the request again without having posted anything.
   */
  async finish(id: string, outcome: string, effects: readonly NewOutboxEntry[] = [], deliverer?: OutboxDeliverer): Promise<void> {
    const now = this.now();
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable("requests")
        .set({ state: "done", outcome, lease_owner: null, lease_expires_at: null, updated_at: now })
        .where("id", "=", id)
        .execute();
      if (effects.length) await addToOutbox(trx, effects, now, deliverer);
    });
  }

  async list(): Promise<AgentRequest[]> {
    return (await this.db.selectFrom("requests").selectAll().orderBy("created_at").execute()).map(toRequest);
  }
}
