import type { Kysely } from "kysely";

/**
 * What the delivery recovery decided about one delivery guid:
 * - `asked`: it asked GitHub to redeliver (after attempt `attemptId`); waiting for the new attempt.
 * - `ask-failed`: the redelivery request itself failed; the next pass may ask again.
 * - `ignored`: its payload is nothing this app acts on (another label, a plain comment, a bot).
 * - `answered`: redelivered, and this controller answered it without recording anything.
 * - `gave-up`: asked as often as allowed and every redelivery failed.
 */
export type AskVerdict = "asked" | "ask-failed" | "ignored" | "answered" | "gave-up";

export interface DeliveryAsk {
  guid: string;
  verdict: AskVerdict;
  /** GitHub's id of the latest attempt when the verdict was made. */
  attemptId: number;
  asks: number;
  askedAt: number;
}

type DeliveryAsksTable = {
  guid: string;
  verdict: string;
  attempt_id: number;
  asks: number;
  asked_at: number;
  updated_at: number;
  repo_id: number | null;
  issue_number: number | null;
};

type DeliveryCoverageTable = {
  name: string;
  covered_until: number;
};

type Tables = {
  delivery_asks: DeliveryAsksTable;
  delivery_coverage: DeliveryCoverageTable;
  jobs: { delivery_id: string; repo_id: number; number: number };
  requests: { delivery_id: string };
};

/** SQL `IN` lists are kept short: SQLite allows 32 766 parameters, and a list this long plans fine. */
const CHUNK = 500;

/**
 * The store side of delivery recovery (migration 007): which guids reached this controller, what
 * was decided about the others, and how far the deliveries list has been covered. Only the
 * recovery pass writes these tables, one replica at a time (an advisory lock), and every write that
 * leads to a redelivery request is conditional, so even two passes at once could not both ask.
 */
export class DeliveryAskStore {
  private readonly db: Kysely<Tables>;

  constructor(
    db: Kysely<any>,
    private readonly now: () => number = Date.now,
  ) {
    this.db = db.withTables<Tables>();
  }

  /** The guids among `guids` that this controller recorded as a job or a request. */
  async reached(guids: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < guids.length; i += CHUNK) {
      const chunk = guids.slice(i, i + CHUNK);
      const jobs = await this.db.selectFrom("jobs").select("delivery_id").where("delivery_id", "in", chunk).execute();
      const requests = await this.db.selectFrom("requests").select("delivery_id").where("delivery_id", "in", chunk).execute();
      for (const row of [...jobs, ...requests]) found.add(row.delivery_id);
    }
    return found;
  }

  async get(guids: readonly string[]): Promise<Map<string, DeliveryAsk>> {
    const found = new Map<string, DeliveryAsk>();
    for (let i = 0; i < guids.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom("delivery_asks")
        .selectAll()
        .where("guid", "in", guids.slice(i, i + CHUNK))
        .execute();
      for (const r of rows) {
        found.set(r.guid, { guid: r.guid, verdict: r.verdict as AskVerdict, attemptId: Number(r.attempt_id), asks: r.asks, askedAt: Number(r.asked_at) });
      }
    }
    return found;
  }

  /**
   * Takes the right to ask GitHub to redeliver `guid` once more: true if this call moved the row
   * from `previous` (absent: no row yet) to one more ask. A second pass holding the same
   * `previous` gets false, so a delivery is never asked for twice on one decision.
   */
  async takeAsk(guid: string, previous: DeliveryAsk | undefined, attemptId: number, issue?: { repoId: number; number: number }): Promise<boolean> {
    const now = this.now();
    if (!previous) {
      const inserted = await this.db
        .insertInto("delivery_asks")
        .values({
          guid,
          verdict: "asked",
          attempt_id: attemptId,
          asks: 1,
          asked_at: now,
          updated_at: now,
          repo_id: issue?.repoId ?? null,
          issue_number: issue?.number ?? null,
        })
        .onConflict((oc) => oc.column("guid").doNothing())
        .executeTakeFirst();
      return Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1;
    }
    const updated = await this.db
      .updateTable("delivery_asks")
      .set({ verdict: "asked", attempt_id: attemptId, asks: previous.asks + 1, asked_at: now, updated_at: now })
      .where("guid", "=", guid)
      .where("asks", "=", previous.asks)
      .where("asked_at", "=", previous.askedAt)
      .executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }

  /** Records a verdict that asks nothing of GitHub (or that the ask just made failed). */
  async setVerdict(guid: string, verdict: AskVerdict, attemptId: number): Promise<void> {
    const now = this.now();
    await this.db
      .insertInto("delivery_asks")
      .values({ guid, verdict, attempt_id: attemptId, asks: 0, asked_at: 0, updated_at: now, repo_id: null, issue_number: null })
      .onConflict((oc) => oc.column("guid").doUpdateSet({ verdict, attempt_id: attemptId, updated_at: now }))
      .execute();
  }

  /** Whether a delivery about this issue was asked to be redelivered and has not come back yet. */
  async redeliveryPendingFor(repoId: number, number: number): Promise<boolean> {
    const row = await this.db
      .selectFrom("delivery_asks")
      .select("guid")
      .where("repo_id", "=", repoId)
      .where("issue_number", "=", number)
      .where("verdict", "in", ["asked", "ask-failed"])
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Forgets guids not looked at since `before`: GitHub no longer lists them either. */
  async prune(before: number): Promise<number> {
    const res = await this.db.deleteFrom("delivery_asks").where("updated_at", "<", before).executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /** Until when every listed delivery has been dealt with; undefined before the first pass. */
  async coveredUntil(): Promise<number | undefined> {
    const row = await this.db.selectFrom("delivery_coverage").select("covered_until").where("name", "=", "app").executeTakeFirst();
    return row ? Number(row.covered_until) : undefined;
  }

  async setCoveredUntil(at: number): Promise<void> {
    await this.db
      .insertInto("delivery_coverage")
      .values({ name: "app", covered_until: at })
      .onConflict((oc) => oc.column("name").doUpdateSet({ covered_until: at }))
      .execute();
  }

  /** Whether any job, in any state, was ever recorded for this issue or pull request. */
  async hasJobFor(repoId: number, number: number): Promise<boolean> {
    const row = await this.db.selectFrom("jobs").select("delivery_id").where("repo_id", "=", repoId).where("number", "=", number).limit(1).executeTakeFirst();
    return row !== undefined;
  }
}
