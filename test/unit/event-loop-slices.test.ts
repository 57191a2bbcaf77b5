import Sqlite from "better-sqlite3";
import { Kysely, SqliteDialect, sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { eventLoopSlices } from "../../src/store/event-loop-slices.js";

/** A store on an in-memory SQLite whose clock moves half a millisecond each time it is read. */
function store(withSlices: boolean) {
  const sqlite = new Sqlite(":memory:");
  let t = 0;
  const now = () => (t += 0.5);
  const plugins = withSlices ? [eventLoopSlices(sqlite, 2, now)] : [];
  return { sqlite, db: new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }), plugins }) };
}

/** Runs `queries` one after another and tells after how many of them a callback waiting for the loop ran. */
async function pollRunsAfter(db: Kysely<any>, queries: number, inTransaction = false): Promise<number> {
  let done = 0;
  let ranAfter = -1;
  setImmediate(() => (ranAfter = done));
  const chain = async (q: Kysely<any>) => {
    for (let i = 0; i < queries; i++) {
      await sql`select ${i} as n`.execute(q);
      done++;
    }
  };
  if (inTransaction) await db.transaction().execute(chain);
  else await chain(db);
  await new Promise((resolve) => setImmediate(resolve));
  return ranAfter;
}

describe("the embedded store lets the event loop in between job work's queries (src/store/event-loop-slices.ts)", () => {
  const opened: Kysely<any>[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.destroy()));
  });

  it("without it, a chain of queries on better-sqlite3 never returns to the loop until it ends", async () => {
    const { db } = store(false);
    opened.push(db);
    expect(await pollRunsAfter(db, 40)).toBe(40);
  });

  it("hands a result back a turn of the loop later once the slice's 2 ms are spent, so what waits for the loop runs", async () => {
    const { db } = store(true);
    opened.push(db);
    // 0.5 ms a query on this clock: the slice is spent after about four.
    const ranAfter = await pollRunsAfter(db, 40);
    expect(ranAfter).toBeGreaterThan(0);
    expect(ranAfter).toBeLessThanOrEqual(5);
  });

  it("never inside a transaction: the store's one connection is held there, and a delivery's write would wait for it", async () => {
    const { db } = store(true);
    opened.push(db);
    // Only the COMMIT, after which the connection is free again, may hand its result back late.
    expect(await pollRunsAfter(db, 40, true)).toBe(40);
  });
});
