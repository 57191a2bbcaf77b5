import { describe, expect, it } from "vitest";
import { OutboxStore, addToOutbox, jobEndedEffects, type NewOutboxEntry } from "../../src/store/outbox-store.js";
import { STORE_KINDS, useTestStores } from "../support/postgres.js";

const reply = (key: string): NewOutboxEntry => ({
  key,
  installationId: 1,
  jobId: null,
  effect: { kind: "comment", owner: "o", repo: "r", issueNumber: 7, body: "hello" },
});

describe.each(STORE_KINDS)("outbox on %s", (kind) => {
  const stores = useTestStores(kind);

  it("lets its writer deliver a row at once, keeps a sweep off it while the lease holds, and hands it over once the lease expires", async () => {
    let t = 1_000_000;
    const db = await stores.fresh();
    const outbox = new OutboxStore(db, () => t);
    await addToOutbox(db, [reply("reply:a")], t, { owner: "writer", leaseMs: 10_000 });
    await addToOutbox(db, [reply("reply:a")], t, { owner: "other", leaseMs: 10_000 }); // same key: one effect
    expect(await outbox.list()).toHaveLength(1);

    expect(await outbox.claim("sweeper", 10_000, 10)).toEqual([]); // the writer holds it
    expect(await outbox.begin("reply:a", "sweeper", 10_000)).toBeUndefined();
    const mine = await outbox.begin("reply:a", "writer", 10_000);
    expect(mine?.tries).toBe(1);
    // The writer dies before finishing: only after the lease expires does anyone else take it,
    // with the try counted (so a comment is looked for before it is posted again).
    expect(await outbox.claim("sweeper", 10_000, 10)).toEqual([]);
    t += 20_000;
    const [taken] = await outbox.claim("sweeper", 10_000, 10);
    expect(taken).toMatchObject({ key: "reply:a", tries: 2 });
    await outbox.finish("writer", "writer"); // a stale finish of another key changes nothing
    await outbox.finish("reply:a", "sweeper");
    expect((await outbox.list())[0]).toMatchObject({ state: "done", tries: 2 });
    t += 60_000;
    expect(await outbox.claim("sweeper", 10_000, 10)).toEqual([]);
  });

  it("gives a row nobody holds (written by the ops CLI or the reaper) to exactly one of two sweeps", async () => {
    const t = 1_000_000;
    const db = await stores.fresh();
    const other = await stores.another();
    await addToOutbox(db, jobEndedEffects({ id: "j1", installationId: 1, worker: null }, t), t);
    const a = new OutboxStore(db, () => t);
    const b = new OutboxStore(other, () => t);
    const [ra, rb] = await Promise.all([a.claim("a", 10_000, 10), b.claim("b", 10_000, 10)]);
    const keys = [...ra, ...rb].map((e) => e.key).sort();
    expect(keys).toEqual(["bill:j1", "final-status:j1", "revoke-token:j1"]);
  });
});
