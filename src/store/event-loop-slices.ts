import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from "kysely";
import type Sqlite from "better-sqlite3";

/**
 * Lets the event loop in between the embedded store's queries once job work has run for
 * `budgetMs` without it. better-sqlite3 answers synchronously, so a chain of Kysely queries
 * resolves in microtasks alone and never returns to the loop; under a burst, the job stage's
 * chains (twenty intakes, dozens of runs and reports) kept the microtask queue full for 20–30 ms
 * at a time (a CPU profile of bench/ingest.ts at 100 deliveries a second), and a webhook delivery
 * waiting in its socket was read only after all of it: its p99 was ×5 bare Probot's. (The
 * webhook path's own priority, src/ingress/webhook-priority.ts, cannot help there: no one knows a
 * delivery is waiting until the loop polls.)
 *
 * A slice starts at the first query after the loop last went round (a `setImmediate` marks it);
 * a query that ends after `budgetMs` of the slice hands its result back one turn of the loop
 * later, so the poll phase reads what arrived meanwhile. Never inside a transaction: Kysely then
 * holds the store's one connection, and everyone else (a delivery's write included) would wait
 * for it across the turn. PostgreSQL needs none of this: its queries are real I/O.
 */
export function eventLoopSlices(sqlite: Sqlite.Database, budgetMs = 1, now: () => number = () => performance.now()): KyselyPlugin {
  let sliceStart = 0;
  let inSlice = false;
  const loopWentRound = () => {
    inSlice = false;
  };
  const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    transformQuery: (args: PluginTransformQueryArgs): RootOperationNode => args.node,
    async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      if (sqlite.inTransaction) return args.result;
      if (!inSlice) {
        inSlice = true;
        sliceStart = now();
        setImmediate(loopWentRound);
        return args.result;
      }
      if (now() - sliceStart >= budgetMs) await nextTurn();
      return args.result;
    },
  };
}
