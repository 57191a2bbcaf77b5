import { afterEach, describe, expect, it } from "vitest";
import { startHarness, FAKE_AGENT_CONFIG, type Harness } from "../support/harness.js";
import type { Backend, Worker } from "../../src/backends/types.js";
import type { GceConfig } from "../../src/config/env.js";
import { costOf, priceJob } from "../../src/cost/price-job.js";
import { formatUsd } from "../../src/cost/estimate.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Prices like gce (e2-small spot in us-central1) without GCP: only what pricing reads. */
const gcePricing = { zones: ["us-central1-a"], machineType: "e2-small", spot: true, diskGb: 20, diskType: "pd-balanced" } as GceConfig;

/**
 * A priced stand-in for gce that counts the workers it starts; its agent changes nothing. While
 * `hold` is set, runs wait for `release()`, so every started job keeps its reservation.
 */
function countingBackend(hold = false) {
  const created: string[] = [];
  let release: () => void = () => undefined;
  const gate = hold ? new Promise<void>((r) => (release = r)) : Promise.resolve();
  const backend: Backend = {
    name: "gce",
    capacity: async () => ({ max: 1000, active: 0 }),
    create: async (job): Promise<Worker> => {
      created.push(job.jobId);
      return { id: `vm-${job.jobId}`, backend: "gce", jobId: job.jobId, createdAt: Date.now(), meta: {} };
    },
    run: async (_worker, _input, _onEvent, signal) => {
      await Promise.race([gate, new Promise((r) => signal.addEventListener("abort", r))]);
      return { outcome: "no_changes", message: "nothing to do", computeSeconds: 0.01, aborted: false };
    },
    destroy: async () => undefined,
    list: async () => [],
  };
  return { backend, created, release: () => release() };
}

describe("budgets, enforced before any worker starts", () => {
  it("let at most 10 of 50 simultaneous triggers start a worker when the repository's month fits 10", async () => {
    const ceiling = costOf(priceJob({ backend: "gce" }, gcePricing), 30 * 60).totalUsd;
    const fake = countingBackend(true);
    h = await startHarness({
      repoConfigYaml: FAKE_AGENT_CONFIG(`backend: gce\nmax_minutes: 30\nbudget: { monthly_usd: ${(ceiling * 10.5).toFixed(6)} }\n`),
      env: { MAX_CONCURRENT_JOBS: "50", BUDGET_GLOBAL_HOURLY_USD: "1000" },
      configure: (c) => (c.gce = gcePricing),
      extraBackends: new Map([["gce", fake.backend]]),
    });
    await Promise.all(Array.from({ length: 50 }, (_, i) => h!.deliverLabel({ number: i + 1, body: "FAKE_AGENT:none" })));
    // Passes take the deliveries in (20 at a time) and start what is admitted, without waiting
    // for runs to end: every started job holds its reservation until the gate opens.
    for (let i = 0; i < 500; i++) {
      await h.controller.scheduler.tick();
      const counts = await h.controller.store.countByState();
      if ((counts.failed ?? 0) + (counts.running ?? 0) === 50) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(fake.created).toHaveLength(10);
    fake.release();
    await h.settle(40);
    const jobs = await h.controller.store.list({ limit: 100 });
    expect(jobs).toHaveLength(50);
    expect(fake.created).toHaveLength(10);
    const refused = jobs.filter((j) => j.message?.startsWith("over this repository's monthly budget"));
    expect(refused).toHaveLength(40);
    expect(refused.every((j) => j.state === "failed")).toBe(true);
    expect(h.github.callsTo("POST", "/access_tokens").filter((c) => c.body && "repository_ids" in c.body)).toHaveLength(10);
  });

  it("tell people which budget, the figures and when it resets, in the comment and the check run", async () => {
    const ceiling = costOf(priceJob({ backend: "gce" }, gcePricing), 30 * 60).totalUsd;
    const fake = countingBackend();
    h = await startHarness({
      repoConfigYaml: FAKE_AGENT_CONFIG("backend: gce\nmax_minutes: 30\n"),
      env: { BUDGET_GLOBAL_HOURLY_USD: (ceiling / 2).toFixed(6) },
      configure: (c) => (c.gce = gcePricing),
      extraBackends: new Map([["gce", fake.backend]]),
    });
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    await h.settle();
    expect(fake.created).toEqual([]);
    const comment = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
    expect(comment).toContain(`Failed: over the controller's hourly budget: $0.00 spent or reserved this hour + up to ${formatUsd(ceiling)} for this job`);
    expect(comment).toMatch(/it resets \d{4}-\d\d-\d\dT\d\d:00:00Z/);
    expect(comment).toContain("**Cost:** $0 (no worker was started)");
    const check = h.github.callsTo("PATCH", "/check-runs/:id").at(-1)!.body;
    expect(check).toMatchObject({ conclusion: "failure" });
    expect(check.output.title).toContain("over the controller's hourly budget");
  });

  it("shorten a job to what the per-job budget buys, and show the ceiling and the billed cost", async () => {
    const pricing = priceJob({ backend: "gce" }, gcePricing);
    const fake = countingBackend();
    // The per-job budget buys 7 minutes at this rate.
    const jobUsd = (pricing.rateUsdPerHour * 7.5) / 60;
    h = await startHarness({
      repoConfigYaml: FAKE_AGENT_CONFIG(`backend: gce\nmax_minutes: 30\nbudget: { job_usd: ${jobUsd.toFixed(8)} }\n`),
      configure: (c) => (c.gce = gcePricing),
      extraBackends: new Map([["gce", fake.backend]]),
    });
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job!.config!.maxMinutes).toBe(7);
    expect(job!.state).toBe("succeeded");
    const queuedComment = h.github.callsTo("POST", "/issues/:id/comments")[0]!.body.body as string;
    expect(queuedComment).toContain(`Cost ceiling: at most ${formatUsd(costOf(pricing, 30 * 60).totalUsd)} (e2-small spot in us-central1, 30 min)`);
    const last = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
    expect(last).toMatch(
      /\*\*Cost:\*\* (<\$0\.0001|\$0\.\d{4}) \(e2-small spot in us-central1, \d+ s at \$0\.0\d{3}\/h with disk; GCE list prices from gce-pricing-2026-07-30\.yml/,
    );
    expect(last).toMatch(/Codertocat\/Hello-World this month: (<\$0\.0001|\$0\.\d{4}) of \$20\.00/);
  });
});
