import type { ExpressionBuilder, Kysely, Selectable } from "kysely";
import type { Database } from "./schema.js";
import { storeDialect } from "./dialect.js";

/** The tables whose rows are worked under a lease: `lease_owner` and `lease_expires_at` columns. */
type LeasedTable = "jobs" | "requests" | "outbox";

/** What one store claims: the rows of `table` in `states`, oldest (after `orderBy`) first. */
export interface LeasedClaim<T extends LeasedTable> {
  table: T;
  /** The row's key column: `id`, or `key` for the outbox. */
  key: "id" | "key";
  states: readonly string[];
  /** Sort before age (`created_at` ascending always comes last), e.g. the jobs' priority. */
  orderBy?: readonly (readonly [string, "asc" | "desc"])[];
  owner: string;
  leaseMs: number;
  now: number;
  /** Columns set on a claimed row besides its lease and `updated_at` (an epoch or try count + 1). */
  also?: (eb: ExpressionBuilder<any, any>) => Record<string, unknown>;
}

/**
 * Claims up to `limit` rows whose lease is free or expired, in order, for `owner`, and returns
 * them as updated. The one claim of the job, request and outbox stores, so that the guarantee
 * is argued once: two replicas never get the same row.
 *
 * - PostgreSQL: replicas claim at the same moment, so the candidates are locked as they are read
 *   (`FOR UPDATE SKIP LOCKED`: rows another claim holds are passed over rather than waited for)
 *   and leased in the same transaction. A row whose lease was taken after the statement's
 *   snapshot is re-checked against the WHERE under its lock, so it is not claimed twice.
 * - SQLite serialises writers, so a conditional update per candidate (the WHERE again, the row
 *   back from RETURNING) is the claim.
 */
export async function claimLeased<T extends LeasedTable>(db: Kysely<Database>, claim: LeasedClaim<T>, limit: number): Promise<Selectable<Database[T]>[]> {
  if (limit <= 0) return [];
  // One table of three, picked at run time: Kysely's types cannot follow a table name held in a
  // variable, so the statements are built untyped here and the rows typed on the way out.
  const any = db as unknown as Kysely<any>;
  const table: string = claim.table;
  const { key, states, owner, leaseMs, now } = claim;
  const claimable = (eb: ExpressionBuilder<any, any>) =>
    eb.and([eb("state", "in", states), eb.or([eb("lease_expires_at", "is", null), eb("lease_expires_at", "<", now)])]);
  const lease = (eb: ExpressionBuilder<any, any>) => ({
    lease_owner: owner,
    lease_expires_at: now + leaseMs,
    updated_at: now,
    ...claim.also?.(eb),
  });
  const candidates = (q: Kysely<any>) => {
    let select = q.selectFrom(table).select(key).where(claimable);
    for (const [column, direction] of claim.orderBy ?? []) select = select.orderBy(column, direction);
    return select.orderBy("created_at", "asc").limit(limit);
  };

  if (storeDialect(db) === "postgres") {
    return any.transaction().execute(async (trx) => {
      const keys = (await candidates(trx).forUpdate().skipLocked().execute()).map((r: Record<string, unknown>) => r[key] as string);
      if (keys.length === 0) return [];
      const rows = await trx.updateTable(table).set(lease).where(key, "in", keys).returningAll().execute();
      const byKey = new Map(rows.map((r: Record<string, unknown>) => [r[key] as string, r as Selectable<Database[T]>]));
      return keys.flatMap((k) => byKey.get(k) ?? []);
    });
  }
  const claimed: Selectable<Database[T]>[] = [];
  for (const row of await candidates(any).execute()) {
    const updated = await any.updateTable(table).set(lease).where(key, "=", row[key]).where(claimable).returningAll().executeTakeFirst();
    if (updated) claimed.push(updated as Selectable<Database[T]>);
  }
  return claimed;
}
