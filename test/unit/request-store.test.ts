import { describe, expect, it } from "vitest";
import { RequestStore, type AgentRequest } from "../../src/store/request-store.js";
import { STORE_KINDS, useTestStores } from "../support/postgres.js";

let n = 0;
function stop(over: Partial<Omit<AgentRequest, "id" | "state" | "createdAt">> = {}): Omit<AgentRequest, "id" | "state" | "createdAt"> {
  n += 1;
  return {
    deliveryId: `d-${n}-${Math.random()}`,
    installationId: 1,
    repoId: 42,
    owner: "octo",
    repo: "demo",
    number: n,
    kind: "issue",
    source: "comment",
    verb: "stop",
    sender: "alice",
    args: { commentId: 2 ** 40 + n, line: "/agent stop" },
    ...over,
  };
}

describe.each(STORE_KINDS)("request store on %s", (kind) => {
  const stores = useTestStores(kind);

  it("records a command once, however often its delivery arrives", async () => {
    const requests = new RequestStore(await stores.fresh());
    const input = stop({ deliveryId: "same" });
    const results = await Promise.all(Array.from({ length: 5 }, () => requests.insert(input)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const [stored] = await requests.list();
    expect(await requests.list()).toHaveLength(1);
    expect(stored).toMatchObject({ verb: "stop", state: "pending", args: input.args, repoId: 42, installationId: 1 });
  });

  it("answers each request once: claimed oldest first, never by two owners, done when finished", async () => {
    let now = 5_000;
    const a = new RequestStore(await stores.fresh(), () => now);
    const b = kind === "postgres" ? new RequestStore(await stores.another(), () => now) : a;
    for (let i = 0; i < 30; i++) {
      now += 1;
      await a.insert(stop());
    }
    const claimedBy = new Map<string, string[]>();
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        for (;;) {
          const got = await (i % 2 ? a : b).claim(`owner-${i}`, 60_000, 4);
          if (got.length === 0) return;
          for (const r of got) claimedBy.set(r.id, [...(claimedBy.get(r.id) ?? []), `owner-${i}`]);
        }
      }),
    );
    expect(claimedBy.size).toBe(30);
    expect([...claimedBy.values()].every((owners) => owners.length === 1)).toBe(true);
    for (const id of claimedBy.keys()) await a.finish(id, "answered");
    now += 120_000;
    expect(await a.claim("late", 60_000, 50)).toEqual([]);
    expect((await a.list()).every((r) => r.state === "done")).toBe(true);
  });

  it("takes a request back when the controller answering it died (its lease ran out)", async () => {
    let now = 1_000;
    const requests = new RequestStore(await stores.fresh(), () => now);
    await requests.insert(stop());
    now += 1;
    await requests.insert(stop());
    const first = await requests.claim("dead", 10_000, 10);
    expect(first).toHaveLength(2);
    expect(first[0]!.createdAt).toBeLessThan(first[1]!.createdAt);
    expect(await requests.claim("alive", 10_000, 10)).toEqual([]);
    now += 10_001;
    expect((await requests.claim("alive", 10_000, 10)).map((r) => r.id)).toEqual(first.map((r) => r.id));
  });
});
