import { afterEach, describe, expect, it } from "vitest";
import { FAKE_AGENT_CONFIG, startHarness, type Harness } from "../support/harness.js";
import { deliver, labeledPayload, OWNER, REPO } from "../support/payloads.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const mintedWorkerTokens = (harness: Harness) => harness.github.callsTo("POST", "/access_tokens").filter((c) => c.body && "repository_ids" in c.body);
const commentBodies = (harness: Harness) => [
  ...harness.github.callsTo("POST", "/issues/:id/comments").map((c) => c.body.body as string),
  ...harness.github.callsTo("PATCH", "/issues/comments/:id").map((c) => c.body.body as string),
];
const lastStatus = (harness: Harness) => commentBodies(harness).at(-1) ?? "";

describe("who may start agent work", () => {
  it.each(["read", "triage", "none"])("refuses a sender with %s access, says why, and starts nothing", async (permission) => {
    h = await startHarness({ permission });
    await h.deliverLabel();
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("rejected");
    const replies = h.github.callsTo("POST", "/issues/:id/comments");
    expect(replies).toHaveLength(1);
    expect(replies[0]!.body.body).toMatch(/did not start: @Codertocat has `\w+` access; starting agent work needs `write`/);
    expect(mintedWorkerTokens(h)).toEqual([]);
    expect(h.github.callsTo("POST", "/check-runs")).toEqual([]);
    expect(h.github.callsTo("POST", "/reactions")).toEqual([]);
  });

  it("fails closed when GitHub's permission API errors", async () => {
    h = await startHarness({ permission: { status: 500 } });
    await h.deliverLabel();
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("rejected");
    // The refusal is an outbox effect: on a loaded machine it may still be on its way, or left for
    // the next sweep, when the job is already written rejected.
    for (let i = 0; i < 100 && !lastStatus(h); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await h.settle();
    }
    expect(lastStatus(h)).toContain("the permission check failed");
    expect(mintedWorkerTokens(h)).toEqual([]);
  });

  it("checks the requester again when the job starts: one who lost write access since intake gets no worker and no token, and is told why", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.controller.scheduler.tick(); // intake: admitted while the requester still had write access
    await h.controller.scheduler.drain();
    expect((await h.controller.store.list())[0]!.state).toBe("queued");
    h.github.setPermission("Codertocat", "read");
    const callsBefore = h.github.calls.length;
    await h.settle();

    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("failed");
    expect(job!.message).toContain("has `read` access; starting agent work needs `write`");
    expect(job!.worker).toBeNull();
    // No token of any kind was asked for after the permission changed, and no worker was made.
    expect(h.github.calls.slice(callsBefore).filter((c) => c.route.endsWith("/access_tokens"))).toEqual([]);
    expect(mintedWorkerTokens(h)).toEqual([]);
    expect((await h.controller.store.events(job!.id)).some((e) => e.kind === "state" && (e.data as { to: string }).to === "provisioning")).toBe(false);
    expect(await h.controller.ledger.get(job!.id)).toBeUndefined();
    expect(lastStatus(h)).toContain("Failed: the requester's access was checked again at start: @Codertocat has `read` access");
    expect(h.github.callsTo("PATCH", "/check-runs/:id").at(-1)!.body).toMatchObject({ conclusion: "failure" });
    expect(h.github.callsTo("PATCH", "/check-runs/:id").at(-1)!.body.output.title).toContain("has `read` access");
  });

  it("fails closed at start too: a permission API error when the job starts ends it without a worker", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.controller.scheduler.tick();
    await h.controller.scheduler.drain();
    h.github.setPermission("Codertocat", { status: 502 });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("failed");
    expect(job!.message).toContain("the permission check failed (GitHub answered 502)");
    expect(mintedWorkerTokens(h)).toEqual([]);
  });

  it("lets a maintainer start work", async () => {
    h = await startHarness({ permission: "maintain", repoConfigYaml: FAKE_AGENT_CONFIG() });
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    expect((await h.controller.store.list())[0]!.state).toBe("succeeded");
  });

  it("ignores a label added by a bot (including this app): no job, no GitHub call", async () => {
    h = await startHarness();
    const r = await h.deliverLabel({ sender: "agent-work[bot]", senderType: "Bot" });
    expect(r.status).toBe(200);
    await h.settle();
    expect(await h.controller.store.list()).toEqual([]);
    expect(h.github.calls).toEqual([]);
  });

  it("ignores other labels", async () => {
    h = await startHarness();
    await h.deliverLabel({ label: "bug" });
    await h.settle();
    expect(await h.controller.store.list()).toEqual([]);
  });

  it("rejects an unsigned or wrongly signed delivery and records nothing", async () => {
    h = await startHarness();
    const payload = labeledPayload({ cloneUrl: h.seeded.cloneUrl });
    const wrong = await deliver(h.controller.url, "not-the-secret", "issues", payload);
    expect(wrong.status).toBeGreaterThanOrEqual(400);
    const unsigned = await fetch(`${h.controller.url}/api/github/webhooks`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-github-event": "issues", "x-github-delivery": "x1" },
      body: JSON.stringify(payload),
    });
    expect(unsigned.status).toBeGreaterThanOrEqual(400);
    expect(await h.controller.store.list()).toEqual([]);
  });
});

describe("one job per request", () => {
  it("makes one job of the same delivery received twice", async () => {
    h = await startHarness();
    const a = await h.deliverLabel({ body: "FAKE_AGENT:edit" }, "delivery-1");
    const b = await h.deliverLabel({ body: "FAKE_AGENT:edit" }, "delivery-1");
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(await h.controller.store.list()).toHaveLength(1);
  });

  it("answers a label added while a job is active with 'waits', and runs it after the first on the same branch and PR", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.controller.scheduler.tick(); // intake: the first job is admitted and queued
    await h.controller.scheduler.drain();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" }); // a second delivery for the same issue
    await h.settle();
    const jobs = await h.controller.store.list();
    expect(jobs.map((j) => j.state).sort()).toEqual(["succeeded", "succeeded"]);
    expect(commentBodies(h).some((b) => b.includes("agent-work is busy on this issue with job"))).toBe(true);
    expect(mintedWorkerTokens(h)).toHaveLength(2);
    // The second opens no second PR: GitHub's 422 for the branch is answered by adopting the first.
    expect(jobs[0]!.prNumber).toBe(jobs[1]!.prNumber);
  });
});

describe("the scheduler", () => {
  it("runs at most MAX_CONCURRENT_JOBS jobs at once and the rest when a slot frees", async () => {
    h = await startHarness({ env: { MAX_CONCURRENT_JOBS: "1" } });
    await h.deliverLabel({ number: 1, body: "FAKE_AGENT:edit" });
    await h.deliverLabel({ number: 2, body: "FAKE_AGENT:edit" });
    await h.controller.scheduler.tick(); // intake of both
    await h.controller.scheduler.drain();
    expect((await h.controller.store.list()).map((j) => j.state)).toEqual(["queued", "queued"]);
    await h.controller.scheduler.tick(); // one slot: one claim
    const claimed = (await h.controller.store.list()).filter((j) => j.leaseOwner !== null);
    expect(claimed).toHaveLength(1);
    expect(h.controller.scheduler.activeJobs).toBe(1);
    await h.settle();
    expect((await h.controller.store.list()).map((j) => j.state)).toEqual(["succeeded", "succeeded"]);
    expect(h.github.callsTo("POST", "/pulls")).toHaveLength(2);
  });
});

describe("the repository's .github/agent-work.yml", () => {
  it("answers a bad file with a comment naming the bad key, and starts nothing", async () => {
    h = await startHarness({ repoConfigYaml: "agent: command\ncommand: [node, x.mjs, '{prompt_file}']\nmax_minute: 5\n" });
    await h.deliverLabel();
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("rejected");
    const reply = h.github.callsTo("POST", "/issues/:id/comments")[0]!.body.body as string;
    expect(reply).toContain(".github/agent-work.yml");
    expect(reply).toContain("max_minute");
    expect(mintedWorkerTokens(h)).toEqual([]);
  });

  it("answers a file that is not YAML the same way", async () => {
    h = await startHarness({ repoConfigYaml: "agent: [unclosed\n" });
    await h.deliverLabel();
    await h.settle();
    expect((await h.controller.store.list())[0]!.state).toBe("rejected");
    expect(h.github.callsTo("POST", "/issues/:id/comments")[0]!.body.body).toContain("agent-work.yml");
  });
});

describe("when the agent does not simply succeed", () => {
  it("explains a failing agent and pushes its partial work, without a PR", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:fail" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("failed");
    expect(job!.message).toBe("the agent exited with code 3");
    expect(await h.git.branchSha(OWNER, REPO, job!.branch!)).toMatch(/^[0-9a-f]{40}$/);
    expect(h.github.callsTo("POST", "/pulls")).toEqual([]);
    const status = lastStatus(h);
    expect(status).toContain("Failed: the agent exited with code 3");
    expect(status).toContain("Partial work was pushed");
    const lastCheck = h.github.callsTo("PATCH", "/check-runs/:id").at(-1)!.body;
    expect(lastCheck).toMatchObject({ status: "completed", conclusion: "failure" });
    expect(lastCheck.output.text).toContain("fake agent failing on purpose");
    expect(h.github.callsTo("DELETE", "/installation/token")).toHaveLength(1);
  });

  it("kills an agent that runs past max minutes and ends `timed_out`", async () => {
    // The harness runs with 1-second "minutes"; max_minutes: 2 gives the agent 2 s.
    h = await startHarness({ repoConfigYaml: FAKE_AGENT_CONFIG("max_minutes: 2\n") });
    await h.deliverLabel({ body: "FAKE_AGENT:sleep" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("timed_out");
    expect(lastStatus(h)).toContain("Timed out");
    expect(h.github.callsTo("PATCH", "/check-runs/:id").at(-1)!.body).toMatchObject({ conclusion: "timed_out" });
    expect(h.github.callsTo("DELETE", "/installation/token")).toHaveLength(1);
  });

  it("opens no PR when the agent changes nothing, and says so", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("succeeded");
    expect(job!.prNumber).toBeNull();
    expect(h.github.callsTo("POST", "/pulls")).toEqual([]);
    expect(lastStatus(h)).toContain("The agent made no changes, so there is no pull request");
    expect(h.github.callsTo("PATCH", "/check-runs/:id").at(-1)!.body).toMatchObject({ conclusion: "neutral" });
  });
});

describe("answering without waiting for the scheduler's timer", () => {
  it("reacts, queues the check run and posts the status comment as soon as the delivery is recorded", async () => {
    // The timer is ten minutes here: only the webhook's wake-up can start the intake. (How fast that
    // is belongs in a benchmark, not in a timed test.)
    h = await startHarness({ autoSchedule: true, env: { SCHEDULER_INTERVAL_MS: "600000" } });
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    for (let i = 0; i < 500 && h.github.callsTo("POST", "/issues/:id/comments").length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(h.github.callsTo("POST", "/reactions")).toHaveLength(1);
    expect(h.github.callsTo("POST", "/check-runs")).toHaveLength(1);
    expect(h.github.callsTo("POST", "/issues/:id/comments")).toHaveLength(1);
  });
});

describe("restarts", () => {
  it("requeues and runs a job whose controller died while it was running, after destroying its worker", async () => {
    h = await startHarness({ env: { LEASE_SECONDS: "5" } });
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.controller.scheduler.tick();
    await h.controller.scheduler.drain();
    const [queued] = await h.controller.store.list();
    // What a controller killed mid-run leaves behind: a running job, a worker, a lease nobody renews.
    const local = (await import("../../src/backends/local/local-backend.js")).local.create({ rootDir: `${h.dataDir}/workers`, maxConcurrent: 2 });
    const worker = await local.create({ jobId: queued!.id, repoFullName: `${OWNER}/${REPO}`, maxSeconds: 60 }, new AbortController().signal);
    await h.controller.store.transition(queued!.id, "queued", "provisioning", { attempts: 1, worker });
    await h.controller.store.transition(queued!.id, "provisioning", "running");
    await h.controller.store.db
      .updateTable("jobs")
      .set({ lease_owner: "dead-controller", lease_expires_at: Date.now() - 1 })
      .execute();
    expect(await local.list()).toHaveLength(1);

    await h.restart();
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("succeeded");
    expect(job!.attempts).toBe(2);
    const kinds = (await h.controller.store.events(job!.id)).map((e) => JSON.stringify(e.data));
    expect(kinds.some((k) => k.includes("controller restarted; job requeued"))).toBe(true);
    expect(await local.list()).toEqual([]);
  });

  it("runs a job that was queued when the controller stopped", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.controller.scheduler.tick(); // intake only: admitted and acknowledged, not yet run
    await h.controller.scheduler.drain();
    const before = await h.controller.store.list();
    expect(before.map((j) => j.state)).toEqual(["queued"]);
    await h.restart();
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.id).toBe(before[0]!.id);
    expect(job!.state).toBe("succeeded");
    expect(h.github.callsTo("POST", "/issues/:id/comments")).toHaveLength(1);
  });
});

describe("sandbox limits in the repository config", () => {
  it("refuses a value above the controller's ceiling with a comment naming the key", async () => {
    h = await startHarness({ repoConfigYaml: FAKE_AGENT_CONFIG("memory_mb: 999999\n") });
    await h.deliverLabel();
    await h.settle();
    expect((await h.controller.store.list())[0]!.state).toBe("rejected");
    expect(h.github.callsTo("POST", "/issues/:id/comments")[0]!.body.body).toContain("memory_mb");
  });
});
