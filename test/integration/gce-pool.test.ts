/**
 * The gce warm pool, against the fake Compute API on 127.0.0.1 (real client) with a real sshd
 * standing in for every VM: fill, take, refill, drain, maximum age, a VM that fails to resume, and
 * two controllers racing for the same parked VM.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createComputeApi } from "../../src/backends/gce/compute-api.js";
import { gce } from "../../src/backends/gce/gce-backend.js";
import { hostKeyLabelValue } from "../../src/backends/gce/gce-names.js";
import { fingerprintOfKeyBlob } from "../../src/backends/gce/wait-for-ssh.js";
import type { RunSpec, Worker } from "../../src/backends/types.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { world, type World } from "../support/gce-world.js";
import { fakeAgentSpec } from "../support/run-spec.js";
import { eventually } from "../contract/live-processes.js";

const never = new AbortController().signal;
const ZONE = "us-central1-a";
const POOL = [{ machineType: "e2-standard-2", zone: ZONE, size: 2 }];

let w: World;
let git: GitServer;
const token = `ghs_${randomBytes(18).toString("hex")}`;

beforeAll(async () => {
  [w, git] = await Promise.all([world({ zones: [ZONE, "us-central1-b"], pool: POOL }), startGitServer({ acceptToken: token })]);
});
afterAll(async () => {
  await Promise.all([w?.close(), git?.close()]);
});

const newJob = () => ({ jobId: `q${randomBytes(5).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600 });
const poolVms = () => w.fake.instances().filter((i) => i.labels["agent-work-pool"] && !i.labels["agent-work-job"]);
const guestAttributeReads = (vm: string) => w.fake.requestsTo("GET", new RegExp(`/instances/${vm}/getGuestAttributes`)).length;
const resumesOf = (vm: string) => w.fake.requestsTo("POST", new RegExp(`/instances/${vm}/resume$`)).length;

async function spec(jobId: string): Promise<RunSpec> {
  return fakeAgentSpec(git, jobId, token, { commitMessage: "agent-work" });
}

describe("the gce warm pool", () => {
  it("fills to its size with VMs booted once (SSH and host key checked) and suspended, which list() does not show as workers", async () => {
    const { actions } = await w.backend.maintain!();
    expect(actions.filter((a) => a.kind === "pool-fill" && !a.error)).toHaveLength(2);
    const parked = poolVms();
    expect(parked.map((i) => i.status)).toEqual(["SUSPENDED", "SUSPENDED"]);
    expect(parked.every((i) => i.name.startsWith("agent-work-pool-") && i.labels["agent-work-pool"] === "e2-standard-2_us-central1-a")).toBe(true);
    for (const vm of parked) expect(w.fake.requestsTo("POST", new RegExp(`/instances/${vm.name}/suspend$`))).toHaveLength(1);
    expect(await w.backend.list()).toEqual([]);
    // A second pass finds the pool full and does nothing.
    expect((await w.backend.maintain!()).actions).toEqual([]);
  });

  it("gives a job a parked VM (resumed, not inserted), used once and deleted after it, and refills behind it", async () => {
    const job = newJob();
    const before = new Set(poolVms().map((i) => i.name));
    const worker = await w.backend.create(job, never);
    expect(before.has(worker.id)).toBe(true);
    expect(worker.meta).toMatchObject({ fromPool: "true", status: "RUNNING", hostKeySha256: w.sshd.hostKeySha256 });
    expect(w.fake.requestsTo("POST", new RegExp(`/instances/${worker.id}/resume$`))).toHaveLength(1);
    expect(w.fake.requestsTo("POST", /\/instances$/).some((r) => r.body.name === `agent-work-${job.jobId}`)).toBe(false);
    expect((await w.backend.list()).map((x) => x.jobId)).toContain(job.jobId);

    const result = await w.backend.run(worker, await spec(job.jobId), () => {}, never);
    expect(result.outcome).toBe("pushed");
    await w.backend.destroy(worker);
    expect(w.fake.instances().map((i) => i.name)).not.toContain(worker.id);

    // The refill started by the take; maintain() waits for it.
    await w.backend.maintain!();
    expect(poolVms().filter((i) => i.status === "SUSPENDED")).toHaveLength(2);
  });

  it("records each pool VM's host key when it parks, and pins that key on the resumed VM without reading its guest attributes again", async () => {
    await w.backend.maintain!();
    for (const vm of poolVms()) expect(vm.labels["agent-work-host-key"]).toBe(hostKeyLabelValue(w.sshd.hostKeySha256));
    const readsBefore = new Map(poolVms().map((vm) => [vm.name, guestAttributeReads(vm.name)]));
    const job = newJob();
    const worker = await w.backend.create(job, never);
    expect(worker.meta).toMatchObject({ fromPool: "true", hostKeySha256: w.sshd.hostKeySha256 });
    expect(guestAttributeReads(worker.id)).toBe(readsBefore.get(worker.id));
    // run() logs in with the pinned key: the VM really is the one recorded.
    expect((await w.backend.run(worker, await spec(job.jobId), () => {}, never)).outcome).toBe("pushed");
    await w.backend.destroy(worker);
    await w.backend.maintain!();
  });

  it("logs in to the taken VM as soon as create() hands it over, with the recorded key pinned, and run() uses that login", async () => {
    await w.backend.maintain!();
    const logins = () => w.sshd.logs().filter((l) => /Accepted publickey/.test(l)).length;
    const before = logins();
    const job = newJob();
    const worker = await w.backend.create(job, never);
    expect(worker.meta).toMatchObject({ fromPool: "true", hostKeySha256: w.sshd.hostKeySha256 });
    // The login goes on while the controller records the worker and mints the token; run() not called yet.
    expect(await eventually(async () => logins() === before + 1)).toBe(true);
    expect((await w.backend.run(worker, await spec(job.jobId), () => {}, never)).outcome).toBe("pushed");
    expect(logins()).toBe(before + 1);
    await w.backend.destroy(worker);
    await w.backend.maintain!();
  });

  it("refuses and deletes a resumed pool VM that shows a host key other than the one recorded when it parked; the job's VM is made the cold way", async () => {
    await w.backend.maintain!();
    const tampered = poolVms();
    const otherKey = fingerprintOfKeyBlob(randomBytes(51));
    for (const vm of tampered) vm.labels = { ...vm.labels, "agent-work-host-key": hostKeyLabelValue(otherKey) };
    const warnings: string[] = [];
    const log = { info: () => {}, error: () => {}, warn: (o: object, m: string) => void warnings.push(`${m}: ${JSON.stringify(o)}`) };
    const backend = gce.create({ ...w.options, zones: [ZONE, "us-central1-b"], pool: POOL, log });
    try {
      const job = newJob();
      const worker = await backend.create(job, never);
      expect(worker.id).toBe(`agent-work-${job.jobId}`);
      expect(worker.meta.fromPool).toBeUndefined();
      for (const vm of tampered) {
        expect(resumesOf(vm.name)).toBe(1);
        expect(w.fake.instances().map((i) => i.name)).not.toContain(vm.name);
      }
      expect(warnings.filter((m) => m.includes(`${w.sshd.hostKeySha256}, but ${otherKey}`) && m.includes("refusing"))).toHaveLength(tampered.length);
      await backend.destroy(worker);
      await backend.maintain!();
    } finally {
      await backend.close();
    }
  });

  it("checks a pool VM parked without a recorded host key against its guest attributes after the resume", async () => {
    await w.backend.maintain!();
    for (const vm of poolVms()) {
      const { "agent-work-host-key": _recorded, ...rest } = vm.labels;
      vm.labels = rest;
    }
    const readsBefore = new Map(poolVms().map((vm) => [vm.name, guestAttributeReads(vm.name)]));
    const worker = await w.backend.create(newJob(), never);
    expect(worker.meta).toMatchObject({ fromPool: "true", hostKeySha256: w.sshd.hostKeySha256 });
    expect(guestAttributeReads(worker.id)).toBeGreaterThan(readsBefore.get(worker.id)!);
    await w.backend.destroy(worker);
    await w.backend.maintain!();
  });

  it("a controller whose take loses the compare-and-swap to another never resumes that VM, and takes the next", async () => {
    await w.backend.maintain!();
    const rivalBackend = gce.create({ ...w.options, zones: [ZONE, "us-central1-b"], pool: POOL });
    const real = createComputeApi(w.options.project, w.options.clientOptions);
    let rival: Promise<Worker> | undefined;
    // The rival takes the VM between this controller's listing and its take: a real race, lost
    // on the label fingerprint the listing read.
    const loser = gce.create({
      ...w.options,
      zones: [ZONE, "us-central1-b"],
      pool: POOL,
      compute: {
        ...real,
        setLabels: async (zone, name, labels, fingerprint) => {
          if (labels["agent-work-job"] && !rival) await (rival = rivalBackend.create(newJob(), never));
          return real.setLabels(zone, name, labels, fingerprint);
        },
      },
    });
    try {
      const mine = await loser.create(newJob(), never);
      const theirs = await rival!;
      expect(theirs.meta.fromPool).toBe("true");
      expect(mine.meta.fromPool).toBe("true");
      expect(mine.id).not.toBe(theirs.id);
      // The VM the rival won was resumed once: by the rival.
      expect(resumesOf(theirs.id)).toBe(1);
      await Promise.all([loser.destroy(mine), rivalBackend.destroy(theirs)]);
      await w.backend.maintain!();
    } finally {
      await Promise.all([loser.close(), rivalBackend.close()]);
    }
  });

  it("deletes a VM that fails to resume and tries the next; with none left the job's VM is made the cold way", async () => {
    const job = newJob();
    const before = poolVms().map((i) => i.name);
    expect(before).toHaveLength(2);
    // Every parked VM fails to resume.
    w.fake.failNext(
      { method: "POST", path: /\/resume$/ },
      400,
      { error: { code: 400, message: "The resource is not ready", errors: [{ domain: "global", reason: "resourceNotReady", message: "not ready" }] } },
      2,
    );
    const worker = await w.backend.create(job, never);
    expect(worker.id).toBe(`agent-work-${job.jobId}`);
    expect(worker.meta.fromPool).toBeUndefined();
    const left = w.fake.instances().map((i) => i.name);
    expect(before.filter((n) => left.includes(n))).toEqual([]);
    await w.backend.destroy(worker);
    await w.backend.maintain!();
    expect(poolVms().filter((i) => i.status === "SUSPENDED")).toHaveLength(2);
  });

  it("two controllers racing for the last parked VM: one takes it, the other makes its own", async () => {
    const other = gce.create({ ...w.options, zones: [ZONE, "us-central1-b"], pool: [{ ...POOL[0]!, size: 1 }] });
    try {
      // Leave exactly one parked VM.
      await w.backend.maintain!();
      const [first, ...rest] = poolVms();
      for (const vm of rest) w.fake.removeInstance(vm.zone, vm.name);
      const [a, b] = await Promise.all([w.backend.create(newJob(), never), other.create(newJob(), never)]);
      expect([a.id, b.id].filter((id) => id === first!.name)).toHaveLength(1);
      // The loser never resumed it.
      expect(resumesOf(first!.name)).toBe(1);
      await Promise.all([w.backend.destroy(a), other.destroy(b)]);
    } finally {
      await other.close();
    }
  });

  it("replaces a parked VM past the maximum age, and drains when the pool is turned off", async () => {
    await w.backend.maintain!();
    const old = w.fake.seedInstance({
      name: "agent-work-pool-old0000000",
      zone: ZONE,
      status: "SUSPENDED",
      labels: { "agent-work-env": w.options.envLabel, "agent-work-pool": "e2-standard-2_us-central1-a" },
      creationTimestamp: new Date(Date.now() - 2 * 86_400_000).toISOString(),
    });
    const { actions } = await w.backend.maintain!();
    expect(actions).toContainEqual(expect.objectContaining({ kind: "pool-delete", id: old.name, reason: expect.stringContaining("maximum age") }));
    expect(w.fake.instances().map((i) => i.name)).not.toContain(old.name);

    const off = gce.create({ ...w.options, pool: [] });
    try {
      const drained = await off.maintain!();
      expect(drained.actions.filter((a) => a.kind === "pool-delete")).toHaveLength(2);
      expect(poolVms()).toEqual([]);
    } finally {
      await off.close();
    }
  });
});
