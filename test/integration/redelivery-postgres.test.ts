import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Kysely } from "kysely";
import nock from "nock";
import pino from "pino";
import { Probot, ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeliveryRecovery, type RecoveryReport } from "../../src/deliveries/delivery-recovery.js";
import { githubAccessFor } from "../../src/github/github-access.js";
import { DeliveryAskStore } from "../../src/store/delivery-asks.js";
import { JobStore } from "../../src/store/job-store.js";
import { openStore } from "../../src/store/open-store.js";
import { fakeHookDeliveries } from "../support/fake-hook-deliveries.js";
import { labeledPayload } from "../support/payloads.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";

const APP_ID = 1234;
const { privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

/** One controller replica's delivery recovery: its own pool on the shared database, its own GitHub clients. */
function replica(db: Kysely<any>) {
  const probot = new Probot({ appId: APP_ID, privateKey, Octokit: ProbotOctokit.defaults({ retry: { enabled: false }, throttle: { enabled: false } }) });
  return new DeliveryRecovery({
    db,
    store: new JobStore(db),
    github: githubAccessFor(probot, "https://api.github.com"),
    triggerLabel: "agent-work",
    appId: APP_ID,
    defaultBackend: "local",
    log: pino({ level: "silent" }),
    wake: () => undefined,
    intervalMs: 0,
    labelScanMaxAgeMs: 30 * 86_400_000,
  });
}

describe("delivery recovery with several replicas on PostgreSQL", () => {
  let database: TestDatabase;
  let receiver: Server;
  const received: string[] = [];
  const pools: Kysely<any>[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    // Stands in for the controllers' webhook endpoint: answers 200 and notes each delivery id.
    receiver = createServer((req, res) => {
      received.push(String(req.headers["x-github-delivery"]));
      req.resume();
      req.on("end", () => res.writeHead(200).end("ok"));
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    nock.disableNetConnect();
    nock.enableNetConnect(/127\.0\.0\.1|localhost/);
  });
  afterEach(async () => {
    nock.cleanAll();
    await Promise.all(pools.splice(0).map((db) => db.destroy()));
  });
  afterAll(async () => {
    nock.enableNetConnect();
    await new Promise((resolve) => receiver.close(resolve));
    await database.drop();
  });

  const open = async () => {
    const db = await openStore({ dataDir: ":unused:", databaseUrl: database.url });
    pools.push(db);
    return db;
  };

  it("lets one replica's pass redeliver while the other's, started meanwhile, skips; later passes of both ask for nothing again", async () => {
    const gh = fakeHookDeliveries({
      webhookUrl: () => `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/api/github/webhooks`,
      secret: "s".repeat(32),
      appId: APP_ID,
      appPrivateKey: privateKey,
      installations: [],
      repos: [],
      mintTokens: true,
    });
    const failed = [1, 2, 3].map((n) => gh.recordOnly("issues", labeledPayload({ cloneUrl: "https://example.invalid/x.git", number: 100 + n }), 502));
    const [a, b] = [replica(await open()), replica(await open())];

    const hold = gh.holdListing();
    const passA = a.tick();
    await hold.listed;
    // A holds the lock while GitHub is slow to list; B does not queue behind it.
    const passB = await b.tick();
    expect(passB).toEqual({ ran: false });
    hold.release();
    const reportA = (await passA) as Extract<RecoveryReport, { ran: true }>;
    expect(reportA.ran).toBe(true);
    expect(reportA.redeliver.redelivered).toBe(3);
    await gh.settled();
    expect(Object.fromEntries(gh.asked)).toEqual(Object.fromEntries(failed.map((f) => [f.guid, 1])));

    // Both at once, then each again: whichever runs finds every delivery decided already.
    const both = await Promise.all([a.tick(), b.tick()]);
    expect(both.filter((r) => r.ran).length).toBeGreaterThanOrEqual(1);
    for (const r of [await a.tick(), await b.tick(), ...both]) if (r.ran) expect(r.redeliver.redelivered).toBe(0);
    await gh.settled();
    expect(Object.fromEntries(gh.asked)).toEqual(Object.fromEntries(failed.map((f) => [f.guid, 1])));
    expect(received.filter((g) => failed.some((f) => f.guid === g)).sort()).toEqual(failed.map((f) => f.guid).sort());
  });

  it("gives the right to ask for a delivery to exactly one of two replicas that decide at the same moment", async () => {
    const [one, two] = [new DeliveryAskStore(await open()), new DeliveryAskStore(await open())];
    const first = await Promise.all([one.takeAsk("guid-1", undefined, 10), two.takeAsk("guid-1", undefined, 10)]);
    expect(first.filter(Boolean)).toHaveLength(1);
    const [row] = [...(await one.get(["guid-1"])).values()];
    const again = await Promise.all([one.takeAsk("guid-1", row, 11), two.takeAsk("guid-1", row, 11)]);
    expect(again.filter(Boolean)).toHaveLength(1);
    expect((await two.get(["guid-1"])).get("guid-1")).toMatchObject({ asks: 2, attemptId: 11, verdict: "asked" });
  });
});
