/**
 * Taking a warm-pool VM with the resume overlapping the take's compare-and-swap, against the fake
 * Compute API (real client) and a real sshd standing in for every VM. The interleavings of two
 * controllers, or a controller and the reaper, are replayed by holding or failing the fake's
 * operations and by gating one side's calls until the other has made its move.
 */
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createComputeApi, type ComputeApi } from "../../src/backends/gce/compute-api.js";
import { gce, type GceBackend } from "../../src/backends/gce/gce-backend.js";
import { RESUMED_SSH_PROBE_TIMEOUT_MS } from "../../src/backends/gce/pool-take.js";
import { probeSshHostKey, type SshProbe } from "../../src/backends/gce/wait-for-ssh.js";
import type { JobSpec } from "../../src/backends/types.js";
import type { WakeAnswer } from "../support/fake-gcp.js";
import { world, type World } from "../support/gce-world.js";

const never = new AbortController().signal;
const ZONE = "us-central1-a";
const POOL = [{ machineType: "e2-standard-2", zone: ZONE, size: 2 }];
const JOB = "agent-work-job";
/** How GCE may tell a caller whose setLabels it accepted that another's came first. */
const LOST = { code: "CONDITION_NOT_MET", message: "Labels fingerprint either invalid or resource labels have changed", httpStatus: 412 };

let w: World;
let real: ComputeApi;

beforeAll(async () => {
  w = await world({ zones: [ZONE], pool: POOL });
  real = createComputeApi(w.options.project, w.options.clientOptions);
});
afterAll(async () => {
  await w?.close();
});
afterEach(() => {
  w.fake.resetFaults();
  // A test that failed half-way must not hand the next one a VM in the wrong state.
  for (const i of w.fake.instances()) if (i.labels[JOB] || i.status !== "SUSPENDED") w.fake.removeInstance(i.zone, i.name);
});

const newJob = (): JobSpec => ({ jobId: `t${randomBytes(5).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600 });
const poolVms = () => w.fake.instances().filter((i) => i.labels["agent-work-pool"] && !i.labels[JOB]);
const instance = (name: string) => w.fake.instances().find((i) => i.name === name);
const resumesOf = (vm: string) => w.fake.requestsTo("POST", new RegExp(`/instances/${vm}/resume$`)).length;
const isTake = (labels: Record<string, string>) => labels[JOB] !== undefined;

/** A promise and its resolver: one side of a race waits on it until the other has made its move. */
function latch() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Another controller of the same deployment, its Compute calls passing through `over`. */
function controller(over: Partial<ComputeApi> = {}, pool = POOL): GceBackend {
  return gce.create({ ...w.options, zones: [ZONE], pool, compute: { ...real, ...over } });
}

/** Fills the pool, then keeps exactly `count` parked VMs (other controllers' refills may have made more). */
async function keepParked(count: number): Promise<string[]> {
  await w.backend.maintain!();
  const vms = poolVms();
  for (const vm of vms.slice(count)) w.fake.removeInstance(vm.zone, vm.name);
  return vms.slice(0, count).map((vm) => vm.name);
}

/** The one parked VM a race is about. */
async function onlyOneParked(): Promise<string> {
  const [vm] = await keepParked(1);
  return vm!;
}

/** Once every take and refill has settled: no VM carries a job, and no idle pool VM is left running. */
async function expectNothingLeaked() {
  await w.backend.maintain!();
  expect(
    w.fake
      .instances()
      .filter((i) => i.labels[JOB])
      .map((i) => i.name),
  ).toEqual([]);
  expect(
    w.fake
      .instances()
      .filter((i) => i.status !== "SUSPENDED")
      .map((i) => `${i.name} ${i.status}`),
  ).toEqual([]);
}

// A race that goes wrong tends to wait forever on a latch: fail it long before the suite's two minutes.
describe("taking a warm-pool VM, its resume overlapping the take", { timeout: 30_000 }, () => {
  it("asks for the resume as soon as GCE accepts the take, and gives the job the VM only once the take's operation is done", async () => {
    const vm = await onlyOneParked();
    const take = w.fake.holdOperations({ kind: "setLabels", target: vm }, 1);
    const resumeAsked = latch();
    let probes = 0;
    const probe: SshProbe = (host, port, timeoutMs) => ((probes += 1), probeSshHostKey(host, port, timeoutMs));
    const backend = gce.create({
      ...w.options,
      zones: [ZONE],
      pool: POOL,
      probe,
      compute: { ...real, resumeInstance: (zone, name) => (resumeAsked.resolve(), real.resumeInstance(zone, name)) },
    });
    try {
      let settled = false;
      const creating = backend.create(newJob(), never).finally(() => (settled = true));
      await take.started;
      const timeout = new Promise<string>((r) => setTimeout(() => r("no resume while the take was in flight"), 10_000));
      expect(await Promise.race([resumeAsked.promise.then(() => "resumed"), timeout])).toBe("resumed");
      await expect.poll(() => instance(vm)?.status).toBe("RUNNING");
      // Resumed, but the take's outcome is not known: nothing goes to the VM, not even a probe.
      await new Promise((r) => setTimeout(r, 200));
      expect({ settled, probes }).toEqual({ settled: false, probes: 0 });
      take.release();
      const worker = await creating;
      expect(worker).toMatchObject({ id: vm, meta: { fromPool: "true", hostKeySha256: w.sshd.hostKeySha256 } });
      expect(resumesOf(vm)).toBe(1);
      await backend.destroy(worker);
    } finally {
      await backend.close();
    }
    await expectNothingLeaked();
  });

  it("probes SSH while the resume's operation is still pending, each probe short, and gives the job the VM once it shows the recorded key", async () => {
    const vm = await onlyOneParked();
    // GCE reports a resume DONE some time after the VM is up; the fake holds it until released.
    const resume = w.fake.holdOperations({ kind: "resume", target: vm }, 1);
    const timeouts: number[] = [];
    const probe: SshProbe = (host, port, timeoutMs) => (timeouts.push(timeoutMs), probeSshHostKey(host, port, timeoutMs));
    const probing = gce.create({ ...w.options, zones: [ZONE], pool: POOL, probe, compute: real });
    try {
      const creating = probing.create(newJob(), never);
      await resume.started;
      const timeout = new Promise<string>((r) => setTimeout(() => r("create() waited for the resume's operation"), 10_000));
      const worker = await Promise.race([creating, timeout]);
      if (typeof worker === "string") throw new Error(worker);
      expect(worker).toMatchObject({ id: vm, meta: { fromPool: "true", hostKeySha256: w.sshd.hostKeySha256 } });
      // Still resuming as far as GCE says: the operation was never let finish.
      expect(instance(vm)?.status).toBe("STAGING");
      expect(timeouts.length).toBeGreaterThan(0);
      expect(timeouts.every((t) => t === RESUMED_SSH_PROBE_TIMEOUT_MS)).toBe(true);
      resume.release();
      await probing.destroy(worker);
    } finally {
      resume.release();
      await probing.close();
    }
    await expectNothingLeaked();
  });

  it("a probe sent before the resumed VM's network is back and never answered does not hold the next: the job gets the VM while it still waits", async () => {
    await onlyOneParked();
    let first: { settled: boolean } | undefined;
    const probe: SshProbe = async (host, port, timeoutMs) => {
      if (first) return probeSshHostKey(host, port, timeoutMs);
      first = { settled: false };
      // A dropped SYN: nothing comes back until the probe gives up.
      await new Promise((r) => setTimeout(r, timeoutMs));
      first.settled = true;
      throw new Error(`connect ETIMEDOUT ${host}:${port}`);
    };
    const probing = gce.create({ ...w.options, zones: [ZONE], pool: POOL, probe, compute: real });
    try {
      const worker = await probing.create(newJob(), never);
      expect(worker.meta).toMatchObject({ fromPool: "true", hostKeySha256: w.sshd.hostKeySha256 });
      expect(first?.settled, "the unanswered probe was still waiting").toBe(false);
      await probing.destroy(worker);
    } finally {
      await probing.close();
    }
    await expectNothingLeaked();
  });

  it("deletes a VM whose take failed in its operation after the resume began (resumed, no job's), and takes the next", async () => {
    const before = await keepParked(2);
    w.fake.failOperations({ kind: "setLabels" }, LOST);
    const worker = await w.backend.create(newJob(), never);
    expect(worker.meta.fromPool).toBe("true");
    const [lost] = before.filter((n) => n !== worker.id);
    expect(resumesOf(lost!)).toBe(1);
    expect(instance(lost!)).toBeUndefined();
    // Not a hedge: the job is billed for its own VM only.
    expect(worker.meta.hedgeVm).toBeUndefined();
    await w.backend.destroy(worker);
    await expectNothingLeaked();
  });

  describe.each<WakeAnswer>(["refuse", "fail-operation", "no-op"])(
    "two controllers whose takes GCE both accepted (a resume of a VM on its way up: %s)",
    (answer) => {
      it("the loser resumed first: the winner finds the VM on its way up, waits for it and gets it; the loser lets it be and goes cold", async () => {
        const vm = await onlyOneParked();
        w.fake.setResumeWhenNotSuspended(answer);
        // The first take of the VM (the loser's) is accepted, held, then failed in its operation.
        w.fake.failOperations({ kind: "setLabels", target: vm }, LOST);
        const losersTake = w.fake.holdOperations({ kind: "setLabels", target: vm }, 1);
        const winnerListed = latch();
        const loserResumed = latch();
        const winner = controller({
          setLabels: async (zone, name, labels, fingerprint) => {
            if (isTake(labels)) {
              winnerListed.resolve();
              await loserResumed.promise;
            }
            return real.setLabels(zone, name, labels, fingerprint);
          },
        });
        const loser = controller({
          resumeInstance: async (zone, name) => {
            const operation = await real.resumeInstance(zone, name);
            loserResumed.resolve();
            return operation;
          },
        });
        try {
          const winnerJob = newJob();
          const loserJob = newJob();
          const winning = winner.create(winnerJob, never);
          await winnerListed.promise;
          const losing = loser.create(loserJob, never);
          const theirs = await winning;
          losersTake.release();
          const mine = await losing;
          expect(theirs).toMatchObject({ id: vm, meta: { fromPool: "true" } });
          expect(mine.id).toBe(`agent-work-${loserJob.jobId}`);
          expect(mine.meta.fromPool).toBeUndefined();
          // Two resumes asked for, one took effect; the VM is the winner's and running.
          expect(resumesOf(vm)).toBe(2);
          expect(instance(vm)).toMatchObject({ status: "RUNNING", labels: { [JOB]: winnerJob.jobId } });
          await Promise.all([winner.destroy(theirs), loser.destroy(mine)]);
        } finally {
          w.fake.resetFaults();
          await Promise.all([winner.close(), loser.close()]);
        }
        await expectNothingLeaked();
      });

      it("the winner resumed first: the loser's resume changes nothing, it lets the VM be and goes cold", async () => {
        const vm = await onlyOneParked();
        w.fake.setResumeWhenNotSuspended(answer);
        const loserListed = latch();
        const winnerResumed = latch();
        const loser = controller({
          setLabels: async (zone, name, labels, fingerprint) => {
            if (isTake(labels)) {
              loserListed.resolve();
              await winnerResumed.promise;
              // Accepted, then told in the operation that the winner's came first.
              w.fake.failOperations({ kind: "setLabels", target: vm }, LOST);
            }
            return real.setLabels(zone, name, labels, fingerprint);
          },
        });
        const winner = controller({
          resumeInstance: async (zone, name) => {
            const operation = await real.resumeInstance(zone, name);
            winnerResumed.resolve();
            return operation;
          },
        });
        try {
          const winnerJob = newJob();
          const loserJob = newJob();
          const losing = loser.create(loserJob, never);
          await loserListed.promise;
          const [theirs, mine] = await Promise.all([winner.create(winnerJob, never), losing]);
          expect(theirs).toMatchObject({ id: vm, meta: { fromPool: "true" } });
          expect(mine.id).toBe(`agent-work-${loserJob.jobId}`);
          expect(resumesOf(vm)).toBe(2);
          expect(instance(vm)).toMatchObject({ status: "RUNNING", labels: { [JOB]: winnerJob.jobId } });
          await Promise.all([winner.destroy(theirs), loser.destroy(mine)]);
        } finally {
          w.fake.resetFaults();
          await Promise.all([winner.close(), loser.close()]);
        }
        await expectNothingLeaked();
      });
    },
  );

  it("a take refused because the reaper marked the VM first never resumes it: the reaper deletes it and the job's VM is made the cold way", async () => {
    const vm = await onlyOneParked();
    const reaper = controller({}, []);
    const takerListed = latch();
    const reaperMarked = latch();
    const taker = controller({
      setLabels: async (zone, name, labels, fingerprint) => {
        if (isTake(labels)) {
          takerListed.resolve();
          await reaperMarked.promise;
        }
        return real.setLabels(zone, name, labels, fingerprint);
      },
    });
    try {
      const job = newJob();
      const taking = taker.create(job, never);
      await takerListed.promise;
      // The reaper (this pool is not configured there: a drain) marks the VM, then deletes it.
      const deleting = w.fake.holdOperations({ kind: "delete", target: vm }, 1);
      const reaping = reaper.maintain!();
      await deleting.started;
      expect(instance(vm)?.labels["agent-work-deleting"]).toBe("unconfigured");
      reaperMarked.resolve();
      const worker = await taking;
      deleting.release();
      const { actions } = await reaping;
      expect(worker.id).toBe(`agent-work-${job.jobId}`);
      expect(resumesOf(vm)).toBe(0);
      expect(actions).toContainEqual(expect.objectContaining({ kind: "pool-delete", id: vm }));
      expect(instance(vm)).toBeUndefined();
      await taker.destroy(worker);
    } finally {
      await Promise.all([taker.close(), reaper.close()]);
    }
    await expectNothingLeaked();
  });

  it("the reaper leaves a VM a job took after the reaper's listing: its mark is refused and the job keeps the VM", async () => {
    const vm = await onlyOneParked();
    const reaperListed = latch();
    const taken = latch();
    const reaper = controller(
      {
        setLabels: async (zone, name, labels, fingerprint) => {
          if (labels["agent-work-deleting"] !== undefined) {
            reaperListed.resolve();
            await taken.promise;
          }
          return real.setLabels(zone, name, labels, fingerprint);
        },
      },
      [],
    );
    const taker = controller();
    try {
      const reaping = reaper.maintain!();
      await reaperListed.promise;
      const worker = await taker.create(newJob(), never);
      taken.resolve();
      const { actions } = await reaping;
      expect(worker).toMatchObject({ id: vm, meta: { fromPool: "true" } });
      expect(actions.filter((a) => a.id === vm)).toEqual([]);
      expect(instance(vm)).toMatchObject({ status: "RUNNING", labels: { [JOB]: worker.jobId } });
      await taker.destroy(worker);
    } finally {
      await Promise.all([taker.close(), reaper.close()]);
    }
    await expectNothingLeaked();
  });

  it("a take GCE accepted but then lost to the reaper: its resume does not keep the VM, the reaper deletes it, and the job's VM is made the cold way", async () => {
    const vm = await onlyOneParked();
    w.fake.failOperations({ kind: "setLabels", target: vm }, LOST);
    const take = w.fake.holdOperations({ kind: "setLabels", target: vm }, 1);
    const resumed = latch();
    const taker = controller({
      resumeInstance: async (zone, name) => {
        const operation = await real.resumeInstance(zone, name);
        resumed.resolve();
        return operation;
      },
    });
    const reaper = controller({}, []);
    try {
      const job = newJob();
      const taking = taker.create(job, never);
      await resumed.promise;
      // The VM is resuming (or up) and no job owns it: the reaper's drain marks and deletes it.
      const { actions } = await reaper.maintain!();
      expect(actions).toContainEqual(expect.objectContaining({ kind: "pool-delete", id: vm }));
      take.release();
      const worker = await taking;
      expect(worker.id).toBe(`agent-work-${job.jobId}`);
      expect(resumesOf(vm)).toBe(1);
      expect(instance(vm)).toBeUndefined();
      await taker.destroy(worker);
    } finally {
      await Promise.all([taker.close(), reaper.close()]);
    }
    await expectNothingLeaked();
  });

  it("a VM an earlier pass marked but did not delete is never offered to a job, and the next pass deletes it", async () => {
    const [marked, other] = await keepParked(2);
    const vm = instance(marked!)!;
    vm.labels = { ...vm.labels, "agent-work-deleting": "max-age" };
    const worker = await w.backend.create(newJob(), never);
    expect(worker.id).toBe(other);
    expect(resumesOf(marked!)).toBe(0);
    await w.backend.destroy(worker);
    // Parked, configured and young: only its mark can have the pool's pass (the refill behind the take) delete it.
    await w.backend.maintain!();
    expect(instance(marked!)).toBeUndefined();
    await expectNothingLeaked();
  });

  it("a resume whose operation fails, the VM not on its way up, deletes that VM; with none left the job's VM is made the cold way", async () => {
    const before = await keepParked(2);
    w.fake.failOperations(
      { kind: "resume" },
      { code: "INTERNAL_ERROR", message: "Internal error. Please try again or contact Google Support.", httpStatus: 500 },
      2,
    );
    // SSH is probed while a resume runs; a VM whose resume failed is not up, so it never answers
    // (the one sshd stands in for every VM: only the job's cold VM is let through to it).
    const probe: SshProbe = (host, port, timeoutMs) =>
      before.some((vm) => instance(vm) !== undefined)
        ? Promise.reject(new Error(`connect ECONNREFUSED ${host}:${port}`))
        : probeSshHostKey(host, port, timeoutMs);
    const backend = gce.create({ ...w.options, zones: [ZONE], pool: POOL, probe, compute: real });
    try {
      const job = newJob();
      const worker = await backend.create(job, never);
      expect(worker.id).toBe(`agent-work-${job.jobId}`);
      expect(worker.meta.fromPool).toBeUndefined();
      for (const vm of before) {
        expect(resumesOf(vm)).toBe(1);
        expect(instance(vm)).toBeUndefined();
      }
      await backend.destroy(worker);
    } finally {
      await backend.close();
    }
    await expectNothingLeaked();
  });
});
