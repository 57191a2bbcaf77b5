import { sql } from "kysely";
import { Probot, ProbotOctokit } from "probot";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeliveryRecovery, type RecoveryReport } from "../../src/deliveries/delivery-recovery.js";
import { githubAccessFor } from "../../src/github/github-access.js";
import { startHarness, type Harness } from "../support/harness.js";
import { fakeHookDeliveries, type FakeHookDeliveries, type FakeRepo } from "../support/fake-hook-deliveries.js";
import { DEFAULT_BRANCH, INSTALLATION_ID, OWNER, REPO, REPO_ID, commentPayload, labeledPayload } from "../support/payloads.js";

const DAY = 86_400_000;

function ran(report: RecoveryReport) {
  if (!report.ran) throw new Error("the pass did not run");
  return report;
}

describe("missed deliveries come back", () => {
  let h: Harness;
  let gh: FakeHookDeliveries;
  let repo: FakeRepo;

  beforeEach(async () => {
    h = await startHarness();
    repo = { id: REPO_ID, owner: OWNER, name: REPO, cloneUrl: h.seeded.cloneUrl, defaultBranch: DEFAULT_BRANCH };
    gh = fakeHookDeliveries({
      webhookUrl: () => `${h.controller.url}/api/github/webhooks`,
      secret: h.webhookSecret,
      appId: 1234,
      appPrivateKey: h.privateKey,
      installations: [{ id: INSTALLATION_ID, account: OWNER }],
      repos: [repo],
    });
  });
  afterEach(async () => {
    await gh.settled();
    await h.close();
  });

  const labelled = (number: number, label = "agent-work", sender?: string) =>
    labeledPayload({ cloneUrl: h.seeded.cloneUrl, number, label, title: `Issue ${number}`, ...(sender ? { sender } : {}) });
  const commented = (number: number, body: string, senderType: "User" | "Bot" = "User") =>
    commentPayload({ cloneUrl: h.seeded.cloneUrl, number, body, senderType });
  const jobsByNumber = async () => {
    const jobs = await h.controller.store.list({ limit: 1000 });
    const by = new Map<number, typeof jobs>();
    for (const job of jobs) by.set(job.number, [...(by.get(job.number) ?? []), job]);
    return by;
  };
  const asked = () => Object.fromEntries(gh.asked);

  it("labels and commands sent while the controller was down each become exactly one job once it is back, and later passes and restarts start nothing twice", async () => {
    gh.openIssue(repo, 1);
    const reached = await gh.label(repo, 1, "agent-work", { login: "Codertocat" }, { payload: labelled(1) });
    expect(gh.attemptsOf(reached!)[0]!.statusCode).toBe(200);

    await h.stop();
    const missed: Record<number, string> = {};
    for (const n of [2, 3]) {
      gh.openIssue(repo, n);
      missed[n] = (await gh.label(repo, n, "agent-work", { login: "Codertocat" }, { payload: labelled(n) }))!;
    }
    gh.openIssue(repo, 4, { comments: 1 });
    missed[4] = (await gh.send("issue_comment", commented(4, "/agent run make the tests pass"))).guid;
    // Deliveries the app would not act on: never asked back.
    const plainComment = (await gh.send("issue_comment", commented(4, "thanks, looks good"))).guid;
    gh.openIssue(repo, 5);
    const otherLabel = (await gh.label(repo, 5, "bug", { login: "Codertocat" }, { payload: labelled(5, "bug") }))!;
    for (const guid of [...Object.values(missed), plainComment, otherLabel]) {
      expect(gh.attemptsOf(guid).map((a) => a.status)).toEqual(["failed to connect to host"]);
    }

    await h.start();
    const first = ran(await h.controller.deliveries.tick());
    await gh.settled();
    expect(first.redeliver).toMatchObject({ handled: 6, reached: 1, inspected: 5, redelivered: 3, ignored: 2 });
    // The label scan ran too (a first pass), and left the labels the list still covers to redelivery.
    expect(first.scan).toMatchObject({ recorded: 0, complete: true });
    expect(asked()).toEqual({ [missed[2]!]: 1, [missed[3]!]: 1, [missed[4]!]: 1 });
    for (const guid of Object.values(missed)) expect(gh.attemptsOf(guid).at(-1)).toMatchObject({ redelivery: true, statusCode: 200 });

    const check = async () => {
      const by = await jobsByNumber();
      expect([...by.keys()].sort()).toEqual([1, 2, 3, 4]);
      for (const [n, jobs] of by) expect(jobs, `issue ${n}`).toHaveLength(1);
      for (const n of [2, 3, 4]) expect(by.get(n)![0]!.deliveryId).toBe(missed[n]);
      expect(by.get(4)![0]!.trigger).toBe("command");
    };
    await check();

    const second = ran(await h.controller.deliveries.tick());
    expect(second.redeliver).toMatchObject({ redelivered: 0, inspected: 0, reached: 4 });
    expect(second.scan).toBeUndefined();
    for (let i = 0; i < 2; i++) {
      await h.restart();
      ran(await h.controller.deliveries.tick());
      await gh.settled();
    }
    expect(asked()).toEqual({ [missed[2]!]: 1, [missed[3]!]: 1, [missed[4]!]: 1 });
    await check();

    // Each runs once to its pull request; passes after that start nothing.
    await h.settle();
    const done = await h.controller.store.list({ limit: 1000 });
    expect(done.map((j) => j.state)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);
    expect(h.github.pulls).toHaveLength(4);
    await h.restart();
    ran(await h.controller.deliveries.tick());
    await gh.settled();
    await h.settle();
    expect(await h.controller.store.list({ limit: 1000 })).toHaveLength(4);
    expect(h.github.pulls).toHaveLength(4);
    expect(asked()).toEqual({ [missed[2]!]: 1, [missed[3]!]: 1, [missed[4]!]: 1 });

    const passLine = h.logLines.map((l) => JSON.parse(l)).find((l) => l.msg === "delivery recovery pass" && l.redelivered === 3);
    expect(passLine).toMatchObject({ listed: 6, redelivered: 3, scanned: 3, recorded: 0 });
    // The App's JWT and the installation token never reach the log.
    expect(h.logLines.filter((l) => /bearer|eyJhbGci|ghs_controllerToken/i.test(l))).toEqual([]);
    // Four real jobs run here (clone, sandboxed agent, push): room for a loaded machine.
  }, 180_000);

  it("asks again when a redelivery fails too, and gives a delivery up after three failed redeliveries", async () => {
    await h.stop();
    gh.openIssue(repo, 7);
    const once = (await gh.label(repo, 7, "agent-work", { login: "Codertocat" }, { payload: labelled(7) }))!;
    gh.openIssue(repo, 8);
    const never = (await gh.label(repo, 8, "agent-work", { login: "Codertocat" }, { payload: labelled(8) }))!;
    await h.start();

    // Both redeliveries are refused by something in front of the controller, and GitHub takes
    // its time: a pass before it has made the attempt asks nothing again.
    gh.refuse(2, 503);
    const release = gh.holdRedeliveries();
    expect(ran(await h.controller.deliveries.tick()).redeliver.redelivered).toBe(2);
    expect(ran(await h.controller.deliveries.tick()).redeliver).toMatchObject({ redelivered: 0, pending: 2 });
    expect(asked()).toEqual({ [once]: 1, [never]: 1 });
    release();
    await gh.settled();
    // Each failed again (a newer attempt): asked again; #8 is refused once more.
    gh.refuse(1, 502, never);
    const retry = ran(await h.controller.deliveries.tick()).redeliver;
    expect(retry.redelivered).toBe(2);
    await gh.settled();
    expect(asked()).toEqual({ [once]: 2, [never]: 2 });
    expect((await jobsByNumber()).get(7)).toHaveLength(1);
    expect((await jobsByNumber()).get(8)).toBeUndefined();

    gh.refuse(10, 502, never);
    expect(ran(await h.controller.deliveries.tick()).redeliver.redelivered).toBe(1);
    await gh.settled();
    const last = ran(await h.controller.deliveries.tick()).redeliver;
    expect(last).toMatchObject({ redelivered: 0, gaveUp: 1 });
    expect(ran(await h.controller.deliveries.tick()).redeliver).toMatchObject({ redelivered: 0, gaveUp: 1 });
    expect(asked()).toEqual({ [once]: 2, [never]: 3 });
    expect(h.logLines.some((l) => l.includes("every redelivery of this delivery failed"))).toBe(true);
  });

  it("redelivers a delivery that was answered 2xx by something that lost it, and reads each payload only once", async () => {
    gh.openIssue(repo, 9);
    const lost = gh.recordOnly("issues", labelled(9), 200);
    const other = gh.recordOnly("issues", labelled(10, "bug"), 200);
    const byBot = gh.recordOnly("issue_comment", commented(9, "/agent run", "Bot"), 502);

    const first = ran(await h.controller.deliveries.tick()).redeliver;
    await gh.settled();
    expect(first).toMatchObject({ inspected: 3, redelivered: 1, ignored: 2 });
    expect(asked()).toEqual({ [lost.guid]: 1 });
    expect((await jobsByNumber()).get(9)!.map((j) => j.deliveryId)).toEqual([lost.guid]);

    const reads = () => gh.requests.filter((r) => /^\/app\/hook\/deliveries\/\d+$/.test(r.path)).length;
    expect(reads()).toBe(3);
    const second = ran(await h.controller.deliveries.tick()).redeliver;
    expect(second).toMatchObject({ inspected: 0, redelivered: 0, reached: 1, ignored: 2 });
    expect(reads()).toBe(3);
    expect(gh.attemptsOf(other.guid)).toHaveLength(1);
    expect(gh.attemptsOf(byBot.guid)).toHaveLength(1);
  });

  it("lists deliveries page by page and asks for at most the per-pass cap, leaving the rest to the next pass", async () => {
    gh.setPageSize(2);
    await h.stop();
    const guids: string[] = [];
    for (const n of [31, 32, 33, 34, 35]) {
      gh.openIssue(repo, n);
      guids.push((await gh.label(repo, n, "agent-work", { login: "Codertocat" }, { payload: labelled(n) }))!);
    }
    await h.start();
    const probot = new Probot({
      appId: 1234,
      privateKey: h.privateKey,
      Octokit: ProbotOctokit.defaults({ retry: { enabled: false }, throttle: { enabled: false } }),
    });
    const recovery = new DeliveryRecovery({
      db: h.controller.store.db,
      store: h.controller.store,
      github: githubAccessFor(probot, "https://api.github.com"),
      triggerLabel: "agent-work",
      appId: 1234,
      defaultBackend: "local",
      log: pino({ level: "silent" }),
      wake: () => undefined,
      intervalMs: 0,
      labelScanMaxAgeMs: 30 * DAY,
      redeliverLimits: { maxAsks: 2 },
    });
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const report = ran(await recovery.tick());
      await gh.settled();
      expect(report.pages).toBeGreaterThanOrEqual(3);
      counts.push(report.redeliver.redelivered);
      if (i === 0) expect(report.redeliver.deferred).toBe(3);
    }
    expect(counts).toEqual([2, 2, 1, 0]);
    expect(asked()).toEqual(Object.fromEntries(guids.map((g) => [g, 1])));
    const by = await jobsByNumber();
    for (const n of [31, 32, 33, 34, 35]) expect(by.get(n), `issue ${n}`).toHaveLength(1);
  });

  it("turns an open labelled issue that never had a job into one job, and leaves alone one that has a job", async () => {
    const now = Date.now();
    gh.openIssue(repo, 20, { title: "Old request" });
    await gh.label(repo, 20, "agent-work", { login: "alice" }, { at: now - 5 * DAY });
    gh.openIssue(repo, 21);
    await gh.label(repo, 21, "agent-work", { login: "Codertocat" }, { at: now - 5 * DAY });
    expect((await h.deliverLabel({ number: 21 })).status).toBe(200);
    gh.openIssue(repo, 22);
    await gh.label(repo, 22, "agent-work", { login: "alice" }, { at: now - 40 * DAY });
    gh.openIssue(repo, 23);
    await gh.label(repo, 23, "agent-work", { login: "some-bot[bot]", type: "Bot" }, { at: now - 5 * DAY });
    gh.openIssue(repo, 24);
    await gh.label(repo, 24, "bug", { login: "alice" }, { at: now - 5 * DAY });

    const first = ran(await h.controller.deliveries.tick());
    expect(first.scan).toMatchObject({ installations: 1, repos: 1, scanned: 4, withJob: 1, tooOld: 1, byBot: 1, recorded: 1, complete: true });
    const by = await jobsByNumber();
    expect([...by.keys()].sort()).toEqual([20, 21]);
    const [job] = by.get(20)!;
    expect(job).toMatchObject({
      state: "received",
      trigger: "label",
      requester: "alice",
      title: "Old request",
      installationId: INSTALLATION_ID,
      repoId: REPO_ID,
      cloneUrl: h.seeded.cloneUrl,
    });
    expect(job!.deliveryId).toMatch(new RegExp(`^scan:${REPO_ID}:20:\\d+$`));
    expect(by.get(21)).toHaveLength(1);

    // Coverage is continuous now: the next pass does not scan.
    expect(ran(await h.controller.deliveries.tick()).scan).toBeUndefined();
    // Forced to scan again (another start, coverage forgotten): nothing new.
    await h.restart();
    await sql`delete from delivery_coverage`.execute(h.controller.store.db);
    const again = ran(await h.controller.deliveries.tick());
    expect(again.scan).toMatchObject({ scanned: 4, withJob: 2, recorded: 0 });
    expect((await h.controller.store.list({ limit: 100 })).map((j) => j.number).sort()).toEqual([20, 21]);

    // The job goes through intake like any label's job.
    await h.settle();
    expect((await h.controller.store.list({ limit: 100 })).every((j) => j.state === "succeeded")).toBe(true);
  }, 120_000);
});
