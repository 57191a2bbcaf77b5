/**
 * The backend contract for `gce`: Compute Engine is the fake on 127.0.0.1 (through the real
 * client), and the VM's SSH is a real sshd on 127.0.0.1 whose host key the fake publishes as the
 * VM's guest attributes. A VM the fake deletes takes its processes with it, as a real one would.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gce, runOnVmOverSsh } from "../../src/backends/gce/gce-backend.js";
import { createJobSecrets, SECRET_ACCESSOR_ROLE } from "../../src/backends/gce/job-secrets.js";
import { realClock } from "../../src/backends/gce/backoff.js";
import { SshPool } from "../../src/remote/ssh-pool.js";
import { loadBackendModule } from "../../src/backends/registry.js";
import type { RunSpec } from "../../src/backends/types.js";
import type { ProgressEvent } from "../../src/worker/protocol.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { world, type World } from "../support/gce-world.js";
import { backendContract } from "./backend.js";
import { eventually, processesUnder } from "./live-processes.js";
import { fakeAgentSpec } from "../support/run-spec.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));
const never = new AbortController().signal;

backendContract("gce", async () => {
  const w = await world();
  return {
    backend: w.backend,
    liveProcesses: async (worker) => (await processesUnder(w.jobDir(worker.jobId))).map((p) => `${p.pid} ${p.cmdline}`),
    cleanup: () => w.close(),
  };
});

describe("the gce backend, beyond the contract", () => {
  let w: World;
  let git: GitServer;
  const token = `ghs_${randomBytes(18).toString("hex")}`;

  beforeAll(async () => {
    [w, git] = await Promise.all([world(), startGitServer({ acceptToken: token })]);
  });
  afterAll(async () => {
    await Promise.all([w?.close(), git?.close()]);
  });

  async function spec(jobId: string, prompt: string): Promise<RunSpec> {
    return fakeAgentSpec(git, jobId, token, { prompt, commitMessage: "agent-work" });
  }

  const newJob = () => ({ jobId: `j${randomBytes(5).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600 });

  it("is found in the registry by its name", async () => {
    expect(await loadBackendModule("gce")).toBe(gce);
  });

  it("pins the VM's host key from its guest attributes", async () => {
    const worker = await w.backend.create(newJob(), never);
    expect(worker.meta.hostKeySha256).toBe(w.sshd.hostKeySha256);
    expect(w.fake.requestsTo("GET", /\/getGuestAttributes$/).at(-1)?.query).toEqual({ queryPath: "hostkeys/" });
    await w.backend.destroy(worker);
  });

  it("cancelling a job stops its worker, and destroying the worker deletes the VM", async () => {
    const job = newJob();
    const worker = await w.backend.create(job, never);
    const ac = new AbortController();
    const result = await w.backend.run(
      worker,
      await spec(job.jobId, "FAKE_AGENT:sleep"),
      (e: ProgressEvent) => {
        if (e.type === "log" && e.line === "fake agent: sleeping") ac.abort(new Error("cancelled by /agent stop"));
      },
      ac.signal,
    );
    expect(result).toMatchObject({ outcome: "error", aborted: true });
    await w.backend.destroy(worker);
    expect(w.fake.requestsTo("DELETE", new RegExp(`/instances/${worker.id}$`))).toHaveLength(1);
    expect(w.fake.instances().map((i) => i.name)).not.toContain(worker.id);
    expect(await eventually(async () => (await processesUnder(w.jobDir(job.jobId))).length === 0)).toBe(true);
  });

  it("sends the token only over SSH stdin: never to the Compute API, in metadata or in a label", async () => {
    const job = newJob();
    const worker = await w.backend.create(job, never);
    const result = await w.backend.run(worker, await spec(job.jobId, "FAKE_AGENT:edit"), () => {}, never);
    expect(result.outcome).toBe("pushed");
    await w.backend.destroy(worker);
    const everythingSent = JSON.stringify(w.fake.requests);
    expect(everythingSent).not.toContain(token);
    expect(everythingSent).not.toMatch(/gh[pousr]_[A-Za-z0-9_]{20,}/);
  });

  it("a restarted controller can run on a VM it only knows from list()", async () => {
    const job = newJob();
    await w.backend.create(job, never);
    // The same project and VM, a new backend with no memory of create().
    const again = gce.create(w.options);
    try {
      const listed = (await again.list()).find((x) => x.jobId === job.jobId)!;
      expect(listed.meta.hostKeySha256).toBeUndefined();
      const result = await again.run(listed, await spec(job.jobId, "FAKE_AGENT:edit"), () => {}, never);
      expect(result.outcome).toBe("pushed");
      await again.destroy(listed);
      expect(w.fake.instances().map((i) => i.labels["agent-work-job"])).not.toContain(job.jobId);
    } finally {
      await again.close();
    }
  });
});

describe("the gce backend when a VM is lost under its job", () => {
  let w: World;
  let git: GitServer;
  const token = `ghs_${randomBytes(18).toString("hex")}`;

  beforeAll(async () => {
    [w, git] = await Promise.all([
      world({ watchSeconds: 1, zones: ["us-central1-a", "us-central1-b", "us-central1-c"] }),
      startGitServer({ acceptToken: token }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([w?.close(), git?.close()]);
  });

  async function sleepSpec(jobId: string): Promise<RunSpec> {
    return fakeAgentSpec(git, jobId, token, { prompt: "FAKE_AGENT:sleep", commitMessage: "agent-work", agentTimeoutSeconds: 120 });
  }
  const newJob = () => ({ jobId: `p${randomBytes(5).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600 });

  it("notices a preempted spot VM from GCE (its status and the preemption operation) while SSH still answers, and says so", async () => {
    const job = newJob();
    const worker = await w.backend.create(job, never);
    expect(worker.meta.provisioningModel).toBe("SPOT");
    // The session outlives the VM here: only the Compute API can tell the run that it is lost.
    w.vmsTakeTheirProcesses = false;
    try {
      const result = await w.backend.run(
        worker,
        await sleepSpec(job.jobId),
        (e) => {
          if (e.type === "log" && e.line === "fake agent: sleeping") w.fake.preemptInstance(worker.meta.zone!, worker.id);
        },
        never,
      );
      expect(result).toMatchObject({ outcome: "error", aborted: false, lost: { reason: `the spot VM ${worker.id} was preempted in us-central1-a` } });
      expect(w.fake.requestsTo("GET", /\/zones\/us-central1-a\/operations$/).at(-1)?.query.filter).toBe('operationType = "compute.instances.preempted"');
      expect(await eventually(async () => (await processesUnder(w.jobDir(job.jobId))).length === 0)).toBe(true);
    } finally {
      w.vmsTakeTheirProcesses = true;
    }

    // Its replacement is on-demand, in the same zone first.
    const again = await w.backend.create({ ...job, replacing: worker }, never);
    expect(again.meta).toMatchObject({ provisioningModel: "STANDARD", zone: "us-central1-a" });
    expect(again.createdAt).toBeGreaterThanOrEqual(worker.createdAt);
    await w.backend.destroy(again);
  });

  it("a VM deleted from outside mid-run is reported lost too; a replacement for a lost on-demand VM goes to the next zone", async () => {
    const job = newJob();
    const worker = await w.backend.create(job, never);
    const result = await w.backend.run(
      worker,
      await sleepSpec(job.jobId),
      (e) => {
        if (e.type === "log" && e.line === "fake agent: sleeping") w.fake.removeInstance(worker.meta.zone!, worker.id);
      },
      never,
    );
    expect(result.lost?.reason).toBe(`the VM ${worker.id} in us-central1-a was deleted outside agent-work`);
    const onDemand = { ...worker, meta: { ...worker.meta, provisioningModel: "STANDARD" } };
    const again = await w.backend.create({ ...job, replacing: onDemand }, never);
    expect(again.meta).toMatchObject({ provisioningModel: "STANDARD", zone: "us-central1-b" });
    await w.backend.destroy(again);
  });

  it("a run stopped by destroy is not mistaken for a lost VM", async () => {
    const job = newJob();
    const worker = await w.backend.create(job, never);
    let destroyed: Promise<void> | undefined;
    const result = await w.backend.run(
      worker,
      await sleepSpec(job.jobId),
      (e) => {
        if (e.type === "log" && e.line === "fake agent: sleeping") destroyed = w.backend.destroy(worker);
      },
      never,
    );
    await destroyed;
    expect(result.lost).toBeUndefined();
  });
});

describe("the gce backend with GCE_TOKEN_DELIVERY=secret-manager", () => {
  let w: World;
  let git: GitServer;
  const token = `ghs_${randomBytes(18).toString("hex")}`;
  const WORKER_SA = "agent-work-worker@test-project.iam.gserviceaccount.com";
  /** Every worker input as it left for the VM, by job id. */
  const sent = new Map<string, RunSpec>();
  const pool = new SshPool();

  beforeAll(async () => {
    [w, git] = await Promise.all([
      world((fake) => {
        const real = runOnVmOverSsh(pool, { killGraceMs: 1000 });
        return {
          tokenDelivery: "secret-manager",
          jobSecrets: createJobSecrets({
            project: "test-project",
            serviceAccount: WORKER_SA,
            envLabel: "secret-delivery",
            clientOptions: fake.clientOptions(),
            clock: realClock,
          }),
          tokenEndpoints: { metadataUrl: fake.url, secretManagerUrl: fake.url },
          runOnVm: (target, o) => {
            sent.set(o.input.jobId, o.input);
            return real(target, o);
          },
        };
      }),
      startGitServer({ acceptToken: token }),
    ]);
  });
  afterAll(async () => {
    await pool.close();
    await Promise.all([w?.close(), git?.close()]);
  });

  async function spec(jobId: string, over: Partial<RunSpec> = {}): Promise<RunSpec> {
    return fakeAgentSpec(git, jobId, token, { commitMessage: "agent-work", ...over });
  }
  const newJob = () => ({ jobId: `s${randomBytes(5).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600 });

  it("the token reaches the VM only through the job's secret, read with the VM's identity, and the secret is gone after teardown", async () => {
    const job = newJob();
    const worker = await w.backend.create(job, never);
    const events: ProgressEvent[] = [];
    const result = await w.backend.run(worker, await spec(job.jobId), (e) => events.push(e), never);
    expect(result.outcome).toBe("pushed");

    // The input on the SSH channel names the secret and holds no token.
    const input = sent.get(job.jobId)!;
    expect(JSON.stringify(input)).not.toContain(token);
    expect(input.tokenFrom?.secretVersion).toBe(`projects/test-project/secrets/agent-work-job-${job.jobId}/versions/latest`);
    // The worker read it with a token from the metadata server, and only the workers' account may.
    expect(w.fake.requestsTo("GET", new RegExp(`agent-work-job-${job.jobId}/versions/latest:access$`))).toHaveLength(1);
    const secret = w.fake.secrets().find((x) => x.name.endsWith(`agent-work-job-${job.jobId}`))!;
    expect(secret.policy.bindings).toEqual([{ role: SECRET_ACCESSOR_ROLE, members: [`serviceAccount:${WORKER_SA}`] }]);
    expect(secret.body.ttl).toMatch(/^\d+s$/);
    // Never in the VM's metadata, labels or any other Compute call; never in the events.
    const compute = JSON.stringify(w.fake.requests.filter((r) => r.path.startsWith("/compute/")));
    expect(compute).not.toContain(token);
    expect(JSON.stringify(events)).not.toContain(token);

    await w.backend.destroy(worker);
    expect(w.fake.secrets().map((x) => x.name)).not.toContain(secret.name);
  });

  it("a secret left behind by a controller that died is swept by the reaper's housekeeping, and a live job's is kept", async () => {
    const live = newJob();
    const worker = await w.backend.create(live, never);
    const secrets = createJobSecrets({
      project: "test-project",
      serviceAccount: WORKER_SA,
      envLabel: "secret-delivery",
      clientOptions: w.fake.clientOptions(),
      clock: realClock,
    });
    await secrets.put(live.jobId, token, { ttlSeconds: 600 });
    await secrets.put("crashed1", token, { ttlSeconds: 600 });
    const sweeper = gce.create({ ...w.options, tokenDelivery: "secret-manager", jobSecrets: secrets, secretSweepAfterSeconds: 0 });
    try {
      const { actions } = await sweeper.maintain!();
      expect(actions).toEqual([expect.objectContaining({ kind: "delete-job-secret", id: "projects/test-project/secrets/agent-work-job-crashed1" })]);
      const left = w.fake.secrets().map((x) => x.name);
      expect(left).not.toContain("projects/test-project/secrets/agent-work-job-crashed1");
      expect(left).toContain(`projects/test-project/secrets/agent-work-job-${live.jobId}`);
    } finally {
      await sweeper.close();
      await w.backend.destroy(worker);
    }
  });

  it("keeps the token on SSH stdin when the agent shares the VM's network (it could read the secret itself)", async () => {
    const job = newJob();
    const worker = await w.backend.create(job, never);
    const result = await w.backend.run(
      worker,
      await spec(job.jobId, { sandbox: { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: true } }),
      () => {},
      never,
    );
    expect(result.outcome).toBe("pushed");
    expect(sent.get(job.jobId)!.tokenFrom).toBeUndefined();
    expect(w.fake.secrets().map((x) => x.name)).not.toContain(`projects/test-project/secrets/agent-work-job-${job.jobId}`);
    await w.backend.destroy(worker);
  });
});
