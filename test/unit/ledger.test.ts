import { describe, expect, it } from "vitest";
import { Ledger, monthStart, nextMonthStart } from "../../src/cost/ledger.js";
import { costOf, priceJob } from "../../src/cost/price-job.js";
import { effectiveBudgets, minutesWithinBudget } from "../../src/cost/budgets.js";
import { estimate, formatUsd } from "../../src/cost/estimate.js";
import { AgentUsageMeter } from "../../src/cost/agent-usage-meter.js";
import { STORE_KINDS, useTestStores } from "../support/postgres.js";

const gce = { zones: ["us-central1-a"], machineType: "e2-small", spot: true, diskGb: 20, diskType: "pd-balanced" as const };
const pricing = priceJob({ backend: "gce" }, gce);
const ceiling = costOf(pricing, 30 * 60).totalUsd;

const roomy = { jobUsd: 100, repoMonthlyUsd: 1000, globalHourlyUsd: 1000 };
const reserve = (ledger: Ledger, jobId: string, budgets = roomy, repoId = 1) =>
  ledger.reserve({ jobId, repoId, repoFullName: `o/r${repoId}`, pricing, ceilingUsd: ceiling, budgets });

describe.each(STORE_KINDS)("budgets on %s", (kind) => {
  const stores = useTestStores(kind);
  const ledgerAt = async (time: { now: number }) => new Ledger(await stores.fresh(), () => time.now);

  it("let at most as many jobs start as fit, however many ask at the same instant", async () => {
    const time = { now: Date.UTC(2026, 10, 15, 12) };
    const ledger = await ledgerAt(time);
    // On PostgreSQL the asks come through two replicas' own connection pools; the embedded store
    // serves one controller, whose asks share its one connection.
    const other = kind === "postgres" ? new Ledger(await stores.another(), () => time.now) : ledger;
    const budgets = { ...roomy, repoMonthlyUsd: ceiling * 10.5 };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => reserve(i % 2 ? ledger : other, `j${i}`, budgets)));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(await ledger.monthToDate(1)).toBeCloseTo(ceiling * 10, 10);
  });

  it("reserve a job once, however often its start is tried", async () => {
    const ledger = await ledgerAt({ now: Date.UTC(2026, 10, 15, 12) });
    const results = await Promise.all(Array.from({ length: 5 }, () => reserve(ledger, "same")));
    expect(results).toEqual(Array.from({ length: 5 }, () => ({ ok: true, reservedUsd: ceiling })));
    expect(await ledger.monthToDate(1)).toBe(ceiling);
  });

  it("refuse a job whose ceiling is over the per-job budget, saying what to change", async () => {
    const ledger = await ledgerAt({ now: Date.UTC(2026, 10, 15) });
    const r = await reserve(ledger, "j1", { ...roomy, jobUsd: ceiling / 2 });
    expect(r).toMatchObject({ ok: false, budget: "job", resetsAt: null });
    expect(!r.ok && r.message).toBe(
      `over the per-job budget: this job could cost up to ${formatUsd(ceiling)}, and one job may cost at most ${formatUsd(ceiling / 2)} (lower \`max_minutes\` or pick a smaller size)`,
    );
  });

  it("refuse over the repository's month with the figures and when it resets, and reset on the 1st", async () => {
    const time = { now: Date.UTC(2026, 10, 30, 23, 59) };
    const ledger = await ledgerAt(time);
    const budgets = { ...roomy, repoMonthlyUsd: ceiling * 1.5 };
    expect((await reserve(ledger, "a", budgets)).ok).toBe(true);
    const refused = await reserve(ledger, "b", budgets);
    expect(refused).toMatchObject({ ok: false, budget: "repo_monthly", spentUsd: ceiling, resetsAt: Date.UTC(2026, 11, 1) });
    expect(!refused.ok && refused.message).toContain("it resets 2026-12-01T00:00:00Z");
    // Another repository has its own month.
    expect((await reserve(ledger, "c", budgets, 2)).ok).toBe(true);
    time.now = Date.UTC(2026, 11, 1, 0, 1);
    expect((await reserve(ledger, "d", budgets)).ok).toBe(true);
  });

  it("refuse over the controller's hour across repositories, and reset at the top of the hour", async () => {
    const time = { now: Date.UTC(2026, 10, 15, 9, 30) };
    const ledger = await ledgerAt(time);
    const budgets = { ...roomy, globalHourlyUsd: ceiling * 1.5 };
    expect((await reserve(ledger, "a", budgets, 1)).ok).toBe(true);
    const refused = await reserve(ledger, "b", budgets, 2);
    expect(refused).toMatchObject({ ok: false, budget: "global_hourly", resetsAt: Date.UTC(2026, 10, 15, 10) });
    expect(!refused.ok && refused.message).toMatch(/over the controller's hourly budget: .* it resets 2026-11-15T10:00:00Z/);
    time.now = Date.UTC(2026, 10, 15, 10, 0, 1);
    expect((await reserve(ledger, "c", budgets, 2)).ok).toBe(true);
  });

  it("hold the warm pool's standing hourly cost against the controller's hour before any job", async () => {
    const time = { now: Date.UTC(2026, 10, 15, 9, 30) };
    const budgets = { ...roomy, globalHourlyUsd: ceiling * 1.5 };
    const withPool = new Ledger(await stores.fresh(), () => time.now, undefined, ceiling * 0.6);
    const refused = await reserve(withPool, "a", budgets, 1);
    expect(refused).toMatchObject({ ok: false, budget: "global_hourly" });
    const withoutPool = new Ledger(await stores.fresh(), () => time.now);
    expect((await reserve(withoutPool, "a", budgets, 1)).ok).toBe(true);
  });

  it("count a finished job at its billed figure, not its ceiling", async () => {
    const time = { now: Date.UTC(2026, 10, 15) };
    const ledger = await ledgerAt(time);
    await reserve(ledger, "a");
    expect(await ledger.monthToDate(1)).toBe(ceiling);
    await ledger.billWorker("a", { id: "w", createdAt: time.now }, time.now + 600_000, pricing);
    const { totalUsd } = await ledger.finalize("a");
    expect(await ledger.monthToDate(1)).toBe(totalUsd);
  });

  it("bill every worker a job had: a requeued job's first worker too, each once however often it is billed", async () => {
    const time = { now: Date.UTC(2026, 10, 15) };
    const ledger = await ledgerAt(time);
    await reserve(ledger, "a");
    // The first start's worker lived 300 s until a recovery destroyed it (billed twice: a retried recovery).
    await ledger.billWorker("a", { id: "w1", createdAt: time.now }, time.now + 300_000, pricing);
    await ledger.billWorker("a", { id: "w1", createdAt: time.now }, time.now + 300_000, pricing);
    // The second start's worker (same id, as a backend that names workers by the job makes it) 612 s.
    await ledger.billWorker("a", { id: "w1", createdAt: time.now + 400_000 }, time.now + 1_012_000, pricing);
    const { billedSeconds, totalUsd } = await ledger.finalize("a");
    expect(billedSeconds).toBe(912);
    expect((await ledger.workerBills("a")).map((b) => b.billedSeconds)).toEqual([300, 612]);
    const one = (s: number) => estimate({ machineType: "e2-small", region: "us-central1", spot: true, seconds: s, diskGb: 20, diskType: "pd-balanced" }).usd;
    expect(totalUsd).toBeCloseTo(one(300) + one(612), 10);
    expect(await ledger.get("a")).toMatchObject({ state: "final", billedSeconds: 912 });
  });

  it("hold a job's ceiling again when it starts again after it was billed (handed back at a shutdown)", async () => {
    const time = { now: Date.UTC(2026, 10, 15) };
    const ledger = await ledgerAt(time);
    await reserve(ledger, "a");
    await ledger.billWorker("a", { id: "w1", createdAt: time.now }, time.now + 60_000, pricing);
    await ledger.finalize("a");
    expect((await reserve(ledger, "a")).ok).toBe(true);
    expect(await ledger.get("a")).toMatchObject({ state: "reserved", totalUsd: null });
    expect(await ledger.monthToDate(1)).toBe(ceiling);
  });

  it("keep free jobs out of the caps while still recording them", async () => {
    const ledger = await ledgerAt({ now: Date.UTC(2026, 10, 15) });
    const free = priceJob({ backend: "local" }, undefined);
    const r = await ledger.reserve({
      jobId: "l",
      repoId: 1,
      repoFullName: "o/r",
      pricing: free,
      ceilingUsd: 0,
      budgets: { jobUsd: 0, repoMonthlyUsd: 0, globalHourlyUsd: 0 },
    });
    expect(r.ok).toBe(true);
    expect((await ledger.entriesThisMonth(1)).map((e) => e.jobId)).toEqual(["l"]);
  });

  it("hold a backend to its BACKEND_CAPS jobs at once, however many ask at the same instant, on every replica", async () => {
    const time = { now: Date.UTC(2026, 10, 15, 12) };
    const ledger = await ledgerAt(time);
    const other = kind === "postgres" ? new Ledger(await stores.another(), () => time.now) : ledger;
    const capped = (l: Ledger, jobId: string) =>
      l.reserve({ jobId, repoId: 1, repoFullName: "o/r1", pricing, ceilingUsd: ceiling, budgets: roomy, backendCap: { jobs: 3 } });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => capped(i % 2 ? ledger : other, `j${i}`)));
    expect(results.filter((r) => r.ok)).toHaveLength(3);
    const refused = results.find((r) => !r.ok);
    expect(refused).toMatchObject({
      ok: false,
      budget: "backend_jobs",
      capUsd: 3,
      spentUsd: 3,
      resetsAt: null,
      message: "`gce` is at its cap of 3 jobs at once (BACKEND_CAPS)",
    });
    expect(await ledger.backendLoad("gce")).toMatchObject({ jobs: 3 });
    // Another backend has its own count; a try of a job already holding its place is not refused.
    const holder = results.findIndex((r) => r.ok);
    expect((await capped(ledger, `j${holder}`)).ok).toBe(true);
    // A billed job frees its place.
    await ledger.finalize(`j${holder}`);
    expect((await capped(ledger, "late")).ok).toBe(true);
  });

  it("hold a backend to its BACKEND_CAPS dollars an hour, and let it spend again the next hour", async () => {
    const time = { now: Date.UTC(2026, 10, 15, 12, 10) };
    const ledger = await ledgerAt(time);
    const capped = (jobId: string) =>
      ledger.reserve({ jobId, repoId: 1, repoFullName: "o/r1", pricing, ceilingUsd: ceiling, budgets: roomy, backendCap: { usdPerHour: ceiling * 1.5 } });
    expect((await capped("a")).ok).toBe(true);
    const refused = await capped("b");
    expect(refused).toMatchObject({ ok: false, budget: "backend_hourly", spentUsd: ceiling, resetsAt: Date.UTC(2026, 10, 15, 13) });
    expect(!refused.ok && refused.message).toBe(
      `\`gce\` is at its cap of ${formatUsd(ceiling * 1.5)} an hour (BACKEND_CAPS): ${formatUsd(ceiling)} spent or reserved this hour + up to ${formatUsd(ceiling)} for this job; it resets 2026-11-15T13:00:00Z`,
    );
    // Free jobs on another backend are not counted against it.
    expect(
      (
        await ledger.reserve({
          jobId: "l",
          repoId: 1,
          repoFullName: "o/r1",
          pricing: priceJob({ backend: "local" }, undefined),
          ceilingUsd: 0,
          budgets: roomy,
          backendCap: { usdPerHour: 0 },
        })
      ).ok,
    ).toBe(true);
    time.now = Date.UTC(2026, 10, 15, 13, 0, 1);
    expect((await capped("b")).ok).toBe(true);
  });

  it("bill the price table's figure for the billed seconds, to the cent", async () => {
    const ledger = await ledgerAt({ now: Date.UTC(2026, 10, 15) });
    await reserve(ledger, "a");
    await ledger.billWorker("a", { id: "w", createdAt: Date.UTC(2026, 10, 15) }, Date.UTC(2026, 10, 15) + 612_000, pricing);
    const { totalUsd } = await ledger.finalize("a");
    const table = estimate({ machineType: "e2-small", region: "us-central1", spot: true, seconds: 612, diskGb: 20, diskType: "pd-balanced" });
    expect(totalUsd).toBe(table.usd);
    expect(formatUsd(totalUsd)).toBe(formatUsd(table.usd));
    expect(await ledger.get("a")).toMatchObject({ state: "final", billedSeconds: 612, totalUsd, spot: true, repoId: 1, startedAt: Date.UTC(2026, 10, 15) });
  });
});

describe("budgets, as figures", () => {
  it("cannot be raised by a repository, only lowered", () => {
    const controller = { jobUsd: 1, repoMonthlyUsd: 20, globalHourlyUsd: 5 };
    expect(effectiveBudgets(controller, { jobUsd: 50, monthlyUsd: 500 })).toEqual(controller);
    expect(effectiveBudgets(controller, { jobUsd: 0.25, monthlyUsd: 3 })).toEqual({ jobUsd: 0.25, repoMonthlyUsd: 3, globalHourlyUsd: 5 });
  });

  it("shorten a job to what the per-job budget buys", () => {
    expect(minutesWithinBudget(1, 6)).toBe(10);
    expect(minutesWithinBudget(1, 0)).toBe(Infinity);
  });
});

describe("the billed figure", () => {
  it("months start on the 1st at 00:00 UTC", () => {
    expect(monthStart(Date.UTC(2026, 1, 28, 23))).toBe(Date.UTC(2026, 1, 1));
    expect(nextMonthStart(Date.UTC(2026, 11, 31, 23, 59))).toBe(Date.UTC(2027, 0, 1));
  });
});

describe("the agent's own usage report", () => {
  const meterOf = (lines: string[], model?: string) => {
    const m = new AgentUsageMeter(model);
    for (const l of lines) m.read(l);
    return m.usage();
  };

  it("takes claude-code's result line: its tokens and its own dollars", () => {
    expect(meterOf(['{"type":"result","total_cost_usd":0.0421,"usage":{"input_tokens":1200,"cache_read_input_tokens":100,"output_tokens":300}}'])).toEqual({
      source: "claude-code",
      costUsd: 0.0421,
      costSource: "reported by claude-code",
      inputTokens: 1300,
      outputTokens: 300,
    });
  });

  it("reads a result line the worker cut at 8000 characters by its fields", () => {
    const line = '{"type":"result","total_cost_usd":1.26,"usage":{"input_tokens":300000,"output_tokens":3000},"result":"' + "x".repeat(9000);
    expect(meterOf([line.slice(0, 8000) + "…"])).toMatchObject({ costUsd: 1.26, inputTokens: 300000, outputTokens: 3000 });
  });

  it("prices claude-code's messages while it runs, once per message, from the model in each", () => {
    const msg = (id: string, output: number) =>
      JSON.stringify({ type: "assistant", message: { id, model: "claude-sonnet-4-5", usage: { input_tokens: 1_000_000, output_tokens: output } } });
    const usage = meterOf([msg("m1", 0), msg("m1", 0), msg("m2", 1_000_000)]);
    // 2 M input at $3 and 1 M output at $15.
    expect(usage).toMatchObject({ source: "claude-code", model: "claude-sonnet-4-5", inputTokens: 2_000_000, outputTokens: 1_000_000, costUsd: 21 });
    expect(usage!.costSource).toMatch(/claude-sonnet-4-5 list price \(checked \d{4}-\d{2}-\d{2}\)/);
  });

  it("adds up codex's turns and prices their tokens at the job's model, cached input cheaper", () => {
    const turn = JSON.stringify({ type: "turn.completed", usage: { input_tokens: 1_000_000, cached_input_tokens: 1_000_000, output_tokens: 100_000 } });
    expect(meterOf([turn, turn], "gpt-5-codex")).toMatchObject({
      source: "codex",
      model: "gpt-5-codex",
      inputTokens: 2_000_000,
      outputTokens: 200_000,
      costUsd: 2 * (0.125 + 1),
    });
    // No model named, or one the table lacks: tokens, and no dollars made up.
    const unpriced = meterOf([turn], "some-private-model");
    expect(unpriced).toMatchObject({ inputTokens: 1_000_000, outputTokens: 100_000 });
    expect(unpriced!.costUsd).toBeUndefined();
  });

  it("adds up opencode's steps with the cost it reports", () => {
    const step = JSON.stringify({
      type: "step_finish",
      part: { type: "step-finish", tokens: { input: 1000, output: 100, reasoning: 0, cache: { read: 0, write: 0 } }, cost: 0.0045 },
    });
    expect(meterOf([step, step])).toMatchObject({
      source: "opencode",
      inputTokens: 2000,
      outputTokens: 200,
      costUsd: 0.009,
      costSource: "reported by opencode",
    });
  });

  it("reads aider's session line", () => {
    expect(meterOf(["Tokens: 2.1k sent, 150 received. Cost: $0.01 message, $0.03 session."])).toMatchObject({
      source: "aider",
      costUsd: 0.03,
      inputTokens: 2100,
      outputTokens: 150,
    });
  });

  it("never lowers a figure: a later, smaller result line does not erase spend", () => {
    expect(
      meterOf([
        '{"type":"result","total_cost_usd":0.9,"usage":{"input_tokens":10,"output_tokens":1}}',
        '{"type":"result","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}',
      ]),
    ).toMatchObject({ costUsd: 0.9, inputTokens: 10 });
  });

  it("is left empty when the agent says nothing about it, never guessed", () => {
    expect(meterOf(["I spent about $5 on this", "tokens used: 12", "{not json", '{"type":"result"}'])).toMatchObject({
      source: "claude-code",
      inputTokens: 0,
      outputTokens: 0,
    });
    expect(meterOf(["I spent about $5 on this"])).toBeNull();
  });
});

describe("the check run's live meter", () => {
  it("shows what a running job has cost so far at its rate, with the ceiling", async () => {
    const { costTexts } = await import("../../src/pipeline/cost-texts.js");
    const now = Date.UTC(2026, 10, 15, 12);
    const job = { backend: "gce", options: {}, config: { maxMinutes: 30, budget: {} }, startedAt: now - 600_000, finishedAt: null } as never;
    const deps = { config: { gce, defaultMaxMinutes: 30, budgets: roomy }, ledger: null as never, now: () => now } as never;
    const texts = await costTexts(deps, job);
    expect(texts.meterText).toBe(
      `${formatUsd(costOf(pricing, 600).totalUsd)} so far (10 min of e2-small spot in us-central1); ceiling at most ${formatUsd(ceiling)} (e2-small spot in us-central1, 30 min)`,
    );
  });
});
