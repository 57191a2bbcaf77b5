/**
 * A spot VM preempted in the middle of a job, end to end: the real controller (harness), the real
 * gce backend against the fake Compute API on 127.0.0.1, a real sshd standing in for the VMs. The
 * job runs again once on an on-demand VM, the status comment says so, and both VMs are billed,
 * each at its own price.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GceConfig } from "../../src/config/env.js";
import { startHarness, FAKE_AGENT_CONFIG, type Harness } from "../support/harness.js";
import { world, type World } from "../support/gce-world.js";
import { processesUnder } from "../contract/live-processes.js";

let h: Harness;
let w: World;

beforeAll(async () => {
  w = await world({ watchSeconds: 1, zones: ["us-central1-a", "us-central1-b"] });
  const gceConfig = {
    zones: ["us-central1-a", "us-central1-b"],
    machineType: "e2-standard-2",
    spot: true,
    onDemandFallback: true,
    diskGb: 20,
    diskType: "pd-balanced",
  } as GceConfig;
  h = await startHarness({
    repoConfigYaml: FAKE_AGENT_CONFIG("backend: gce\nmax_minutes: 50\n"),
    secondsPerMinute: 6,
    configure: (c) => (c.gce = gceConfig),
    extraBackends: new Map([["gce", w.backend]]),
  });
});
afterAll(async () => {
  await h?.close();
  await w?.close();
});

describe("a spot VM preempted mid-job", () => {
  it("runs the job again once on on-demand, says so in the comment, and bills both VMs", async () => {
    await h.deliverLabel({ body: 'FAKE_AGENT:slow\nFAKE_AGENT_ARGS: {"seconds": 4}' });
    const settled = h.settle();
    // Preempt the first VM once its agent is at work.
    let preempted: string | undefined;
    const deadline = Date.now() + 240_000;
    let over = false;
    void settled.finally(() => (over = true));
    while (!preempted && !over && Date.now() < deadline) {
      const [vm] = w.fake.instances();
      if (vm) {
        const jobId = vm.labels["agent-work-job"]!;
        const agents = (await processesUnder(w.jobDir(jobId))).filter((p) => p.cmdline.includes("fake-agent.mjs"));
        if (agents.length > 0) {
          w.fake.preemptInstance(vm.zone, vm.name);
          preempted = vm.name;
        }
      }
      if (!preempted) await new Promise((r) => setTimeout(r, 200));
    }
    await settled;
    if (!preempted || (await h.controller.store.list())[0]?.state !== "succeeded") console.log(h.logLines.slice(-40).join("\n"));
    expect(preempted, "the first VM's agent was seen running").toBeDefined();

    const [job] = await h.controller.store.list();
    expect(job!.state).toBe("succeeded");
    // Two inserts: spot, then on-demand after the preemption.
    const inserts = w.fake.requestsTo("POST", /\/instances$/).map((r) => r.body.scheduling.provisioningModel);
    expect(inserts).toEqual(["SPOT", "STANDARD"]);
    const worker = job!.steps.find((s) => s.name === "worker")!;
    expect(worker.detail).toMatch(/the spot VM agent-work-\S+ was preempted in us-central1-a; run again on agent-work-\S+ \(on-demand\) in us-central1-a/);
    const comment = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
    expect(comment).toContain("was preempted in us-central1-a; run again on");

    const bills = await h.controller.ledger.workerBills(job!.id);
    expect(bills).toHaveLength(2);
    expect(bills.every((b) => b.totalUsd > 0)).toBe(true);
    expect(job!.costUsd).toBeCloseTo(bills[0]!.totalUsd + bills[1]!.totalUsd, 10);
    // Nothing is left running.
    expect(w.fake.instances()).toEqual([]);
  }, 600_000);
});
