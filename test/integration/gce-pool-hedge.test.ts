/**
 * A hedged warm-pool take (GCE_POOL_HEDGE): two parked VMs taken and resumed at once, the job
 * given the first to show its recorded key over SSH, the other parked again with its pool labels
 * back (or deleted when that fails) and billed to the job. Against the fake Compute API (real
 * client) and a real sshd standing in for every VM; which VM answers first is decided by holding
 * the other's take in the fake.
 */
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createComputeApi, type ComputeApi } from "../../src/backends/gce/compute-api.js";
import { gce, type GceBackend } from "../../src/backends/gce/gce-backend.js";
import { HEDGE_SUSPEND_BILLED_SECONDS } from "../../src/backends/gce/pool-take.js";
import type { JobSpec } from "../../src/backends/types.js";
import type { FakeInstance } from "../support/fake-gcp.js";
import { world, type World } from "../support/gce-world.js";

const never = new AbortController().signal;
const ZONE = "us-central1-a";
const JOB = "agent-work-job";

let w: World;
let real: ComputeApi;

beforeAll(async () => {
  w = await world({ zones: [ZONE], pool: [{ machineType: "e2-standard-2", zone: ZONE, size: 2 }] });
  real = createComputeApi(w.options.project, w.options.clientOptions);
});
afterAll(async () => {
  await w?.close();
});
afterEach(() => {
  w.fake.resetFaults();
  for (const i of w.fake.instances()) w.fake.removeInstance(i.zone, i.name);
});

const newJob = (): JobSpec => ({ jobId: `h${randomBytes(5).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600 });
const instance = (name: string) => w.fake.instances().find((i) => i.name === name);
const requestsTo = (vm: string, verb: string) => w.fake.requestsTo("POST", new RegExp(`/instances/${vm}/${verb}$`)).length;
const parked = () => w.fake.instances().filter((i) => i.labels["agent-work-pool"] && !i.labels[JOB] && i.status === "SUSPENDED");

/** A controller with a pool of `size` and the hedge on or off, its Compute calls passing through `over`. */
function controller(size: number, hedge: boolean, over: Partial<ComputeApi> = {}): GceBackend {
  return gce.create({
    ...w.options,
    zones: [ZONE],
    pool: [{ machineType: "e2-standard-2", zone: ZONE, size }],
    poolHedge: hedge,
    compute: { ...real, ...over },
  });
}

/** Fills a pool of `size` (hedge off, so nothing is taken) and returns its parked VMs, oldest first. */
async function parkedPool(size: number): Promise<FakeInstance[]> {
  const filler = controller(size, false);
  await filler.maintain!();
  await filler.close();
  const vms = parked().sort((a, b) => Date.parse(a.creationTimestamp) - Date.parse(b.creationTimestamp));
  expect(vms).toHaveLength(size);
  return vms;
}

describe("a hedged warm-pool take", { timeout: 60_000 }, () => {
  it("resumes two parked VMs, gives the job the first to answer, parks the other again with its pool labels, and bills it to the job", async () => {
    const [slow, fast] = await parkedPool(2);
    const slowLabels = { ...slow!.labels };
    // The slow VM's take does not finish until the job has the fast one: it answers second.
    const held = w.fake.holdOperations({ kind: "setLabels", target: slow!.name }, 1);
    const backend = controller(2, true);
    // The take falls in a later second than the pool VMs' creation: the bill's start tells them apart.
    await new Promise((r) => setTimeout(r, 1100));
    try {
      const before = Date.now();
      const worker = await backend.create(newJob(), never);
      expect(worker.id).toBe(fast!.name);
      expect(worker.meta).toMatchObject({ fromPool: "true", hedgeVm: slow!.name, hedgeZone: ZONE });
      // Both were asked to resume before either answered.
      expect([requestsTo(slow!.name, "resume"), requestsTo(fast!.name, "resume")]).toEqual([1, 1]);
      // Billed from the take, not from the pool VM's creation; the other VM for at least GCE's minute plus its suspend.
      expect(worker.createdAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(worker.createdAt).toBeGreaterThan(Date.parse(fast!.creationTimestamp));
      expect(Number(worker.meta.hedgeResumedAt)).toBeGreaterThanOrEqual(before);
      expect(Number(worker.meta.hedgeBilledSeconds)).toBeGreaterThanOrEqual(60 + HEDGE_SUSPEND_BILLED_SECONDS);
      // A reaper pass while the other VM is on its way back counts it once it is back: it fills one, not two.
      const pass = backend.maintain!();
      held.release();
      expect((await pass).actions.map((a) => `${a.kind}${a.error ? " failed" : ""}`)).toEqual(["pool-fill"]);
      await backend.destroy(worker);
      // close() waits for the other VM to be parked again and for the refill behind the take.
      await backend.close();
      expect(instance(slow!.name)).toMatchObject({ status: "SUSPENDED", labels: slowLabels });
      expect(requestsTo(slow!.name, "suspend")).toBe(2);
      // The refill counted the VM that came back: the pool is its size again, not one over.
      expect(parked()).toHaveLength(2);
      expect(instance(fast!.name)).toBeUndefined();
    } finally {
      held.release();
      await backend.close();
    }
  });

  it("deletes the other VM when it cannot be parked again, and leaves no VM carrying the job", async () => {
    const [slow, fast] = await parkedPool(2);
    const held = w.fake.holdOperations({ kind: "setLabels", target: slow!.name }, 1);
    w.fake.failOperations(
      { kind: "suspend", target: slow!.name },
      { code: "UNSUPPORTED_OPERATION", message: "You cannot suspend an instance that is being repaired." },
    );
    const backend = controller(2, true);
    try {
      const job = newJob();
      const worker = await backend.create(job, never);
      expect(worker.id).toBe(fast!.name);
      held.release();
      await backend.destroy(worker);
      await backend.close();
      expect(instance(slow!.name)).toBeUndefined();
      expect(w.fake.instances().filter((i) => i.labels[JOB])).toEqual([]);
    } finally {
      held.release();
      await backend.close();
    }
  });

  it("a take GCE accepts only after the job has its VM never resumes that VM: its pool labels go back", async () => {
    const [late, first] = await parkedPool(2);
    const lateLabels = { ...late!.labels };
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    // The late VM's compare-and-swap is answered only once the job has the other one.
    const backend = controller(2, true, {
      setLabels: async (zone, name, labels, fingerprint) => {
        if (name === late!.name && labels[JOB]) await answered;
        return real.setLabels(zone, name, labels, fingerprint);
      },
    });
    try {
      const worker = await backend.create(newJob(), never);
      expect(worker.id).toBe(first!.name);
      expect(worker.meta.hedgeVm).toBeUndefined();
      answer();
      await backend.destroy(worker);
      await backend.close();
      expect(requestsTo(late!.name, "resume")).toBe(0);
      expect(instance(late!.name)).toMatchObject({ status: "SUSPENDED", labels: lateLabels });
    } finally {
      answer();
      await backend.close();
    }
  });

  it("does not hedge with GCE_POOL_HEDGE off, nor while another take is under way (a burst gives each job its own VM)", async () => {
    const vms = await parkedPool(3);
    const off = controller(3, false);
    try {
      const worker = await off.create(newJob(), never);
      expect(worker.meta.hedgeVm).toBeUndefined();
      expect(vms.map((vm) => requestsTo(vm.name, "resume")).reduce((a, b) => a + b)).toBe(1);
      await off.destroy(worker);
    } finally {
      await off.close();
    }

    // Four parked: the second job could hedge too, and must not while the first's take is under way.
    const four = await parkedPool(4);
    const held = w.fake.holdOperations({ kind: "setLabels" }, 2);
    const backend = controller(4, true);
    const resumes = () => four.map((vm) => requestsTo(vm.name, "resume")).reduce((x, y) => x + y);
    try {
      const firstJob = backend.create(newJob(), never);
      await held.started;
      await expect.poll(() => four.filter((vm) => instance(vm.name)?.labels[JOB]).length).toBe(2);
      const second = await backend.create(newJob(), never);
      expect(second.meta.hedgeVm).toBeUndefined();
      held.release();
      const first = await firstJob;
      expect(first.meta.hedgeVm).toBeDefined();
      expect(new Set([first.id, second.id, first.meta.hedgeVm]).size).toBe(3);
      // Two VMs for the first job (one parked again), one for the second: three resumes in all.
      expect(resumes()).toBe(3);
      await Promise.all([backend.destroy(first), backend.destroy(second)]);
    } finally {
      held.release();
      await backend.close();
    }
  });

  it("a pool over its size (another controller's refill raced this one's) is trimmed back to it, oldest first", async () => {
    const vms = await parkedPool(3);
    const smaller = controller(2, true);
    try {
      const { actions } = await smaller.maintain!();
      expect(actions).toEqual([expect.objectContaining({ kind: "pool-delete", id: vms[0]!.name, reason: expect.stringContaining("more than the pool's 2") })]);
      expect(
        parked()
          .map((i) => i.name)
          .sort(),
      ).toEqual([vms[1]!.name, vms[2]!.name].sort());
    } finally {
      await smaller.close();
    }
  });
});
