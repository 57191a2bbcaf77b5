/**
 * Two connections to the embedded store, as the controller has with the webhook thread: the main
 * thread's transactions take the write lock at BEGIN, so a write from the other connection between
 * a transaction's read and its write waits for the commit instead of making that write fail
 * (SQLite answers a deferred transaction whose snapshot went stale with SQLITE_BUSY at once).
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "kysely";
import { afterEach, expect, it } from "vitest";
import { onEmbeddedSqlite, openStore, retryWhileBusy } from "../../src/store/open-store.js";
import { JobStore } from "../../src/store/job-store.js";
import type { NewJob } from "../../src/jobs/types.js";
import { newJob } from "../support/new-job.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

it("a transaction holds the write lock from its start: the other connection's write waits, and the transaction's own write never fails", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "agent-work-two-connections-"));
  dirs.push(dir);
  const main = await openStore({ dataDir: dir });
  const thread = await openStore({ dataDir: dir, secondConnection: true });
  try {
    await sql`create table counters (name text primary key, n integer not null)`.execute(main);
    await sql`insert into counters values ('a', 0)`.execute(main);
    // The other connection's own handle (a second connection never waits in SQLite: busy_timeout 0).
    const raw = (await onEmbeddedSqlite(thread, (sqlite) => sqlite))!;
    const otherWrite = async () => raw.prepare("insert into counters values (?, 1)").run(`other-${Date.now()}-${Math.random()}`).changes;

    let refused: unknown;
    await main.transaction().execute(async (trx) => {
      const before = await sql<{ n: number }>`select n from counters where name = 'a'`.execute(trx);
      // The webhook thread writes while the transaction is between its read and its write.
      refused = await otherWrite().catch((err: unknown) => err);
      await sql`update counters set n = ${before.rows[0]!.n + 1} where name = 'a'`.execute(trx);
    });
    expect((refused as { code?: string }).code).toBe("SQLITE_BUSY");
    // Once committed, the other connection writes as usual.
    expect(await otherWrite()).toBe(1);
    const rows = await sql<{ name: string; n: number }>`select name, n from counters order by name`.execute(main);
    expect(rows.rows[0]).toEqual({ name: "a", n: 1 });
    expect(rows.rows).toHaveLength(2);
  } finally {
    await thread.destroy();
    await main.destroy();
  }
});

it("a second connection's write tries again while another connection holds the lock, and gives up only on other errors", () => {
  const busy = Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" });
  let tries = 0;
  expect(
    retryWhileBusy(() => {
      tries++;
      if (tries < 4) throw busy;
      return "written";
    }),
  ).toBe("written");
  expect(tries).toBe(4);

  tries = 0;
  const constraint = Object.assign(new Error("UNIQUE constraint failed"), { code: "SQLITE_CONSTRAINT_UNIQUE" });
  expect(() =>
    retryWhileBusy(() => {
      tries++;
      throw constraint;
    }),
  ).toThrow(constraint);
  expect(tries).toBe(1);
});

it("the webhook thread's connection records the deliveries of one turn in one commit, and a bad one fails alone", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "agent-work-turn-batch-"));
  dirs.push(dir);
  const main = await openStore({ dataDir: dir });
  const thread = new JobStore(await openStore({ dataDir: dir, secondConnection: true }));
  const job = (deliveryId: string, over: Partial<NewJob> = {}): NewJob => newJob({ deliveryId, ...over });
  // Frames in the WAL since it was emptied: each commit writes every page it changed once more.
  const emptyWal = () => sql`pragma wal_checkpoint(TRUNCATE)`.execute(main);
  const walFrames = () => Math.max(0, (statSync(path.join(dir, "agent-work.sqlite-wal")).size - 32) / (4096 + 24));
  try {
    await thread.insertReceived(job("warm-up"), { backend: "local" });
    await emptyWal();
    await thread.insertReceived(job("alone"), { backend: "local" });
    const oneCommit = walFrames();
    expect(oneCommit).toBeGreaterThan(1);

    await emptyWal();
    const turn = await Promise.all(Array.from({ length: 8 }, (_, i) => thread.insertReceived(job(`turn-${i}`), { backend: "local" })));
    expect(turn.every((r) => r.created)).toBe(true);
    // One commit for the eight: eight commits would write about eight times the pages of one.
    expect(walFrames()).toBeLessThan(2 * oneCommit);

    // In one turn: a delivery seen twice, and a row the database refuses.
    const [first, again, bad, good] = await Promise.allSettled([
      thread.insertReceived(job("twice"), { backend: "local" }),
      thread.insertReceived(job("twice"), { backend: "local" }),
      thread.insertReceived(job("bad", { title: null as never }), { backend: "local" }),
      thread.insertReceived(job("good"), { backend: "local" }),
    ]);
    const value = <T>(r: PromiseSettledResult<T>): T => {
      if (r.status === "rejected") throw r.reason;
      return r.value;
    };
    expect(value(first).created).toBe(true);
    expect(value(again)).toMatchObject({ created: false, job: { id: value(first).job.id } });
    expect(bad.status === "rejected" && String(bad.reason)).toMatch(/NOT NULL/);
    expect(value(good).created).toBe(true);
    const recorded = await new JobStore(main).list();
    expect(recorded.map((j) => j.deliveryId).sort()).toEqual([
      "alone",
      "good",
      "turn-0",
      "turn-1",
      "turn-2",
      "turn-3",
      "turn-4",
      "turn-5",
      "turn-6",
      "turn-7",
      "twice",
      "warm-up",
    ]);
  } finally {
    await thread.db.destroy();
    await main.destroy();
  }
});
