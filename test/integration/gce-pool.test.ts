/**
 * The gce warm pool, against the fake Compute API on 127.0.0.1 (real client) with a real sshd
 * standing in for every VM: fill, take, refill, drain, maximum age, a VM that fails to resume, and
 * two controllers racing for the same parked VM.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gce } from "../../src/backends/gce/gce-backend.js";
import type { RunSpec } from "../../src/backends/types.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { world, type World } from "../support/gce-world.js";
import { fakeAgentSpec } from "../support/run-spec.js";

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
