import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { JobStore, LeaseLostError, StaleStateError, isUniqueViolation } from "../../src/store/job-store.js";
import type { NewJob } from "../../src/jobs/types.js";
import { STORE_KINDS, createTestDatabase, useTestStores } from "../support/postgres.js";
import { newJob } from "../support/new-job.js";

describe.each(STORE_KINDS)("job store on %s", (kind) => {
  const stores = useTestStores(kind);
  const freshStore = async (now?: () => number) => new JobStore(await stores.fresh(), now);

  it("records the same delivery once, however often it arrives", async () => {
    const store = await freshStore();
    const input = newJob({ deliveryId: "same" });
    const results = await Promise.all(Array.from({ length: 20 }, () => store.insertReceived(input, { backend: "local" })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
    expect((await store.list()).length).toBe(1);
  });

  // Replicas share only PostgreSQL; the embedded store serves one controller process.
  it.runIf(kind === "postgres")("records a delivery once even when it lands on two replicas at the same time", async () => {
    const a = await freshStore();
    const b = new JobStore(await stores.another());
    const input = newJob({ deliveryId: "redelivered" });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).insertReceived(input, { backend: "local" })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
  });

  it("refuses every write of a lease holder whose lease was taken over, and lets the new holder write", async () => {
    let t = 1_000_000;
    const store = await freshStore(() => t);
    const { job } = await store.insertReceived(newJob(), { backend: "local" });
    await store.transition(job.id, "received", "queued");
    const [a] = await store.claim(["queued"], "replica-a", 10_000, 1);
    const stale = store.fencedTo(a!);
    await stale.update(job.id, { message: "a was here" }); // while A holds it, A writes
    t += 20_000; // A stalls past its lease; B claims the job
    const [b] = await store.claim(["queued"], "replica-b", 10_000, 1);
    expect(b!.leaseEpoch).toBe(a!.leaseEpoch + 1);
    const fresh = store.fencedTo(b!);
    await fresh.transition(job.id, "queued", "provisioning", { attempts: 1 });

    const lost = await stale.update(job.id, { message: "a again", attempts: 99 }).catch((e) => e);
    expect(lost).toBeInstanceOf(LeaseLostError);
    expect(await stale.transition(job.id, "provisioning", "failed", { message: "a says failed" }).catch((e) => e)).toBeInstanceOf(LeaseLostError);
    expect(await stale.holdsLease()).toBe(false);
    expect(await store.renewLease(job.id, "replica-a", 10_000, a!.leaseEpoch)).toBe(false);
    await store.releaseLease(job.id, "replica-a", a!.leaseEpoch);
    const after = (await store.get(job.id))!;
    expect(after).toMatchObject({ state: "provisioning", attempts: 1, message: "a was here", leaseOwner: "replica-b" });

    await fresh.update(job.id, { message: "b writes" });
    expect((await store.get(job.id))!.message).toBe("b writes");
  });

  it("fences a process's own earlier claim too: the epoch, not only the owner, names the claim", async () => {
    let t = 1_000_000;
    const store = await freshStore(() => t);
    const { job } = await store.insertReceived(newJob(), { backend: "local" });
    await store.transition(job.id, "received", "queued");
    const [first] = await store.claim(["queued"], "same", 10_000, 1);
    t += 20_000;
    const [again] = await store.claim(["queued"], "same", 10_000, 1);
    expect(
      await store
        .fencedTo(first!)
        .update(job.id, { message: "old claim" })
        .catch((e) => e),
    ).toBeInstanceOf(LeaseLostError);
    await store.fencedTo(again!).update(job.id, { message: "new claim" });
    expect((await store.get(job.id))!.message).toBe("new claim");
  });

  it("admits at most one active job per issue", async () => {
    const store = await freshStore();
    const a = (await store.insertReceived(newJob(), { backend: "local" })).job;
    const b = (await store.insertReceived(newJob(), { backend: "local" })).job;
    await store.transition(a.id, "received", "queued");
    const err = await store.transition(b.id, "received", "queued").catch((e) => e);
    expect(isUniqueViolation(err)).toBe(true);
    expect((await store.get(b.id))?.state).toBe("received");
    // Once the first job ends, the issue takes a new one.
    await store.transition(a.id, "queued", "cancelled");
    await store.transition(b.id, "received", "queued");
    expect((await store.activeFor(42, 7))?.id).toBe(b.id);
  });

  it("refuses a transition the state machine does not allow, and one that lost a race", async () => {
    const store = await freshStore();
    const a = (await store.insertReceived(newJob(), { backend: "local" })).job;
    await expect(store.transition(a.id, "received", "running")).rejects.toThrow(/cannot go from received to running/);
    await store.transition(a.id, "received", "queued");
    await expect(store.transition(a.id, "received", "queued")).rejects.toBeInstanceOf(StaleStateError);
  });

  it("claims by priority then age, and never hands one job to two owners while the lease holds", async () => {
    let now = 1_000;
    const store = await freshStore(() => now);
    const low = (await store.insertReceived(newJob({ number: 1 }), { backend: "local" })).job;
    now += 1;
    const high = (await store.insertReceived(newJob({ number: 2 }), { backend: "local" })).job;
    await store.transition(low.id, "received", "queued");
    await store.transition(high.id, "received", "queued", { priority: 5 });
    const first = await store.claim(["queued"], "a", 10_000, 1);
    expect(first.map((j) => j.id)).toEqual([high.id]);
    expect(first[0]).toMatchObject({ leaseOwner: "a", leaseExpiresAt: now + 10_000 });
    const second = await store.claim(["queued"], "b", 10_000, 5);
    expect(second.map((j) => j.id)).toEqual([low.id]);
    expect(await store.claim(["queued"], "c", 10_000, 5)).toEqual([]);
    now += 20_000; // both leases expired: their owners are presumed dead
    expect((await store.claim(["queued"], "c", 10_000, 5)).map((j) => j.id)).toEqual([high.id, low.id]);
  });

  it("never hands one job to two owners when replicas claim at the same instant", async () => {
    const a = await freshStore();
    const b = new JobStore(await stores.another());
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const { job } = await a.insertReceived(newJob({ number: 1000 + i }), { backend: "local" });
      await a.transition(job.id, "received", "queued");
      ids.push(job.id);
    }
    const claimedBy = new Map<string, string[]>();
    // 12 claimers, half on each replica's connection, each taking 7 at a time until none is left.
    await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const owner = `owner-${i}`;
        for (;;) {
          const got = await (i % 2 ? a : b).claim(["queued"], owner, 60_000, 7);
          if (got.length === 0) return;
          for (const job of got) claimedBy.set(job.id, [...(claimedBy.get(job.id) ?? []), owner]);
        }
      }),
    );
    expect([...claimedBy.values()].filter((owners) => owners.length > 1)).toEqual([]);
    expect([...claimedBy.keys()].sort()).toEqual([...ids].sort());
    for (const job of await a.list({ limit: 200 })) expect(job.leaseOwner).toBe(claimedBy.get(job.id)![0]);
  });

  it("gives numbers, not strings, for every bigint column and every count", async () => {
    const store = await freshStore(() => 1_790_000_000_123);
    const big = 2 ** 40 + 3; // GitHub ids outgrow 32 bits
    const { job } = await store.insertReceived(newJob({ installationId: big, repoId: big, triggerCommentId: big }), { backend: "local" });
    const updated = await store.update(job.id, { checkRunId: big, commentId: big, deadlineAt: 1_790_000_060_000, computeSeconds: 1.5 });
    expect(updated).toMatchObject({
      installationId: big,
      repoId: big,
      triggerCommentId: big,
      checkRunId: big,
      commentId: big,
      createdAt: 1_790_000_000_123,
      deadlineAt: 1_790_000_060_000,
      computeSeconds: 1.5,
    });
    const raw = await store.db.selectFrom("jobs").select(["installation_id", "created_at", "check_run_id"]).executeTakeFirstOrThrow();
    expect(raw).toEqual({ installation_id: big, created_at: 1_790_000_000_123, check_run_id: big });
    const count = await store.db
      .selectFrom("jobs")
      .select((eb) => eb.fn.countAll().as("n"))
      .executeTakeFirstOrThrow();
    expect(count.n).toBe(1);
    expect(await store.countByState()).toEqual({ received: 1 });
  });

  it("keeps jobs and their events across a restart of the process", async () => {
    const s1 = await freshStore();
    const { job } = await s1.insertReceived(newJob(), { backend: "local" });
    await s1.transition(job.id, "received", "queued");
    await s1.db.destroy();
    const s2 = new JobStore(await stores.another());
    expect((await s2.get(job.id))?.state).toBe("queued");
    expect((await s2.events(job.id)).map((e) => e.kind)).toEqual(["received", "state"]);
    expect(await s2.countByState()).toEqual({ queued: 1 });
  });

  it("records a delivery in a commit of its own, never inside another caller's open transaction", async () => {
    const store = await freshStore();
    const { job } = await store.insertReceived(newJob({ deliveryId: "earlier" }), { backend: "local" });
    let recorded: Promise<unknown> | undefined;
    // A transaction of job work that is between two of its queries when the delivery arrives, then fails.
    await expect(
      store.db.transaction().execute(async (trx) => {
        await trx.insertInto("job_events").values({ job_id: job.id, at: 1, kind: "state", data_json: "{}" }).execute();
        recorded = store.insertReceived(newJob({ deliveryId: "during-a-transaction" }), { backend: "local" });
        await new Promise((resolve) => setTimeout(resolve, 10));
        throw new Error("job work failed");
      }),
    ).rejects.toThrow("job work failed");
    await recorded;
    // Had the delivery joined the transaction, its rollback would have taken the job with it.
    expect((await store.list()).map((j) => j.deliveryId).sort()).toEqual(["during-a-transaction", "earlier"]);
    expect((await store.events(job.id)).map((e) => e.kind)).toEqual(["received"]);
  });

  it.runIf(kind === "sqlite")("records a delivery ahead of the store queries already waiting for the connection", async () => {
    const store = await freshStore();
    const order: string[] = [];
    // Job work's queries, queued on the embedded store's one connection before the delivery arrives.
    const queued = Array.from({ length: 20 }, (_, i) => store.countByState().then(() => order.push(`query ${i}`)));
    const recorded = store.insertReceived(newJob({ deliveryId: "first" }), { backend: "local" }).then(() => order.push("delivery"));
    await Promise.all([...queued, recorded]);
    expect(order.indexOf("delivery")).toBeLessThan(order.indexOf("query 19"));
    expect(order.indexOf("delivery")).toBeLessThan(2);
  });

  it.runIf(kind === "postgres")("passes over a job another replica is claiming instead of waiting for it", async () => {
    const a = await freshStore();
    const b = new JobStore(await stores.another());
    const held = (await a.insertReceived(newJob({ number: 1 }), { backend: "local" })).job;
    const free = (await a.insertReceived(newJob({ number: 2 }), { backend: "local" })).job;
    await a.transition(held.id, "received", "queued");
    await a.transition(free.id, "received", "queued");
    // Replica A is in the middle of a claim: the row is locked but its lease not yet written.
    await a.db.transaction().execute(async (trx) => {
      await sql`select id from jobs where id = ${held.id} for update`.execute(trx);
      // Were B to wait for the locked row, it would wait for this very transaction: the test would hang, not pass.
      const got = await b.claim(["queued"], "b", 60_000, 5);
      expect(got.map((j) => j.id)).toEqual([free.id]);
    });
  });

  it.runIf(kind === "postgres")("lets replicas that start together on a new database migrate it once", async () => {
    const database = await createTestDatabase();
    try {
      const dbs = await Promise.all(Array.from({ length: 3 }, () => openStore({ dataDir: ":unused:", databaseUrl: database.url })));
      // Each of them sees the whole schema, whichever ran the migrations.
      for (const db of dbs) expect(await new JobStore(db).countByState()).toEqual({});
      const migrations = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(dbs[0]!);
      expect(migrations.rows[0]?.name).toBe("001-jobs");
      await Promise.all(dbs.map((db) => db.destroy()));
    } finally {
      await database.drop();
    }
  });
});
