import { sql, type Kysely } from "kysely";
import { storeDialect } from "./dialect.js";

/** PostgreSQL advisory lock keys, one per thing that must not run twice at once across replicas. */
export const ADVISORY_LOCKS = {
  /** Held for one budget check and reservation (a transaction lock): src/cost/ledger.ts. */
  ledgerReserve: 73656,
  /** Held for one reaper pass (a session lock): src/reaper/reap.ts. */
  reaperPass: 73657,
  /** Held for one delivery recovery pass (a session lock): src/deliveries/delivery-recovery.ts. */
  deliveryRecovery: 73658,
} as const;

export type Exclusive<T> = { ran: true; value: T } | { ran: false };

/**
 * Runs `work` unless another process holds the lock, in which case it returns `{ ran: false }` at
 * once rather than queueing a second pass behind the first. On PostgreSQL the lock is a session
 * advisory lock on one connection held for the whole of `work` (a transaction lock would keep a
 * transaction open across backend calls that take minutes); it goes with the session if the
 * process dies. On SQLite there is one controller, so `work` simply runs.
 */
export async function runExclusively<T>(db: Kysely<any>, key: number, work: () => Promise<T>): Promise<Exclusive<T>> {
  if (storeDialect(db) !== "postgres") return { ran: true, value: await work() };
  return db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${key}) as locked`.execute(conn);
    if (!rows[0]?.locked) return { ran: false as const };
    try {
      return { ran: true as const, value: await work() };
    } finally {
      // A broken connection has already dropped the lock with its session.
      await sql`select pg_advisory_unlock(${key})`.execute(conn).catch(() => undefined);
    }
  });
}
