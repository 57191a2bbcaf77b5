import { PostgresAdapter, type Kysely } from "kysely";

export type StoreDialect = "sqlite" | "postgres";

/**
 * Which engine a store talks to, for the few places the two must differ: how a claim locks rows,
 * and whether a lock must reach other processes (PostgreSQL serves many replicas; the embedded
 * SQLite store serves one controller, whose own code already runs one pass at a time).
 */
export function storeDialect(db: Kysely<any>): StoreDialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? "postgres" : "sqlite";
}
