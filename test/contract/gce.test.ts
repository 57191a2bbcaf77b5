/**
 * The backend contract for `gce`: Compute Engine is the fake on 127.0.0.1 (through the real
 * client), and the VM's SSH is a real sshd on 127.0.0.1 whose host key the fake publishes as the
 * VM's guest attributes. A VM the fake deletes takes its processes with it, as a real one would.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NodeSSH } from "node-ssh";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gce, runOnVmOverSsh, type GceBackend, type GceBackendOptions } from "../../src/backends/gce/gce-backend.js";
import { createJobSecrets, SECRET_ACCESSOR_ROLE } from "../../src/backends/gce/job-secrets.js";
import { realClock } from "../../src/backends/gce/backoff.js";
import { SshPool } from "../../src/remote/ssh-pool.js";
import { findBackendModule } from "../../src/backends/registry.js";
import type { RunSpec } from "../../src/backends/types.js";
import type { ProgressEvent } from "../../src/worker/protocol.js";
import { startFakeGcp, type FakeGcp, type FakeInstance } from "../support/fake-gcp.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { startSshd, type TestSshd } from "../support/sshd.js";
import { backendContract } from "./backend.js";
import { eventually, processesUnder } from "./live-processes.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));
const never = new AbortController().signal;

/** The sshd's host key blob (base64), as a VM's guest agent would publish it. */
async function hostKeyBlob(sshd: TestSshd): Promise<string> {
  const ssh = new NodeSSH();
  let blob = "";
  await ssh
    .connect({ host: sshd.host, port: sshd.port, username: "probe", password: "x", readyTimeout: 5000, hostVerifier: (key: Buffer) => ((blob = key.toString("base64")), false) })
    .catch(() => undefined);
  ssh.dispose();
  if (!blob) throw new Error("the test sshd showed no host key");
  return blob;
}

interface World {
  sshd: TestSshd;
  fake: FakeGcp;
  root: string;
  options: GceBackendOptions;
  backend: GceBackend;
  jobDir(jobId: string): string;
  close(): Promise<void>;
}

function backendOptions(sshd: TestSshd, fake: FakeGcp, workRoot: string, envLabel: string): GceBackendOptions {
  return {
    project: "test-project",
    zones: ["us-central1-a", "us-central1-b"],
    machineType: "e2-standard-2",
    image: "projects/test-project/global/images/family/agent-work-worker",
    serviceAccount: "agent-work-worker@test-project.iam.gserviceaccount.com",
    network: "default",
    externalIp: false,
    networkTags: ["agent-work-worker"],
    diskGb: 20,
    diskType: "pd-balanced",
    envLabel,
    spot: true,
    onDemandFallback: true,
    maxVms: 8,
    ssh: { username: sshd.username, privateKey: sshd.privateKey, port: sshd.port },
    bootTimeoutSeconds: 60,
    remoteWorkRoot: workRoot,
    killGraceMs: 1000,
    clientOptions: fake.clientOptions(),
  };
}

async function world(over: Partial<GceBackendOptions> | ((fake: FakeGcp) => Partial<GceBackendOptions>) = {}): Promise<World> {
  const sshd = await startSshd();
  const workRoot = `agent-work-gce-test-${randomBytes(4).toString("hex")}`;
  const root = path.join(sshd.home, workRoot);
  const jobDir = (jobId: string) => path.join(root, jobId);
  const fake = await startFakeGcp({
    hostKeys: { "ssh-ed25519": await hostKeyBlob(sshd) },
    // Deleting a VM ends everything on it.
    onInstanceGone: (i: FakeInstance) => {
      const jobId = i.labels["agent-work-job"];
      if (!jobId) return;
      void processesUnder(jobDir(jobId)).then((ps) =>
        ps.forEach((p) => {
          try {
            process.kill(p.pid, "SIGKILL");
          } catch {
            // gone already
          }
        }),
      );
    },
  });
  const options = backendOptions(sshd, fake, workRoot, `contract-${randomBytes(3).toString("hex")}`);
  const backend = gce.create({ ...options, ...(typeof over === "function" ? over(fake) : over) });
  return {
    sshd,
    fake,
    root,
    options,
    backend,
    jobDir,
    async close() {
      await backend.close();
      await Promise.all([sshd.close(), fake.close()]);
      await rm(root, { recursive: true, force: true });
    },
  };
}

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
    const { cloneUrl } = await git.createRepo("octo", jobId, { "README.md": "# demo\n" });
    return {
      jobId,
      cloneUrl,
      baseBranch: "main",
      branch: `agent-work/${jobId}`,
      token,
      agentArgv: [process.execPath, FAKE_AGENT, "{prompt_file}"],
      prompt,
      commitMessage: "agent-work",
      author: { name: "agent-work[bot]", email: "bot@example.com" },
      agentTimeoutSeconds: 60,
      agentEnv: {},
      sandbox: { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: false },
    };
  }

  const newJob = () => ({ jobId: `j${randomBytes(5).toString("hex")}`, repoFullName: "octo/demo", maxSeconds: 600 });

  it("is found in the registry by its name", () => {
    expect(findBackendModule("gce")).toBe(gce);
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
          jobSecrets: createJobSecrets({ project: "test-project", serviceAccount: WORKER_SA, envLabel: "secret-delivery", clientOptions: fake.clientOptions(), clock: realClock }),
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
    const { cloneUrl } = await git.createRepo("octo", jobId, { "README.md": "# demo\n" });
    return {
      jobId,
      cloneUrl,
      baseBranch: "main",
      branch: `agent-work/${jobId}`,
      token,
      agentArgv: [process.execPath, FAKE_AGENT, "{prompt_file}"],
      prompt: "FAKE_AGENT:edit",
      commitMessage: "agent-work",
      author: { name: "agent-work[bot]", email: "bot@example.com" },
      agentTimeoutSeconds: 60,
      agentEnv: {},
      sandbox: { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: false },
      ...over,
    };
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
    const secrets = createJobSecrets({ project: "test-project", serviceAccount: WORKER_SA, envLabel: "secret-delivery", clientOptions: w.fake.clientOptions(), clock: realClock });
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
    const result = await w.backend.run(worker, await spec(job.jobId, { sandbox: { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: true } }), () => {}, never);
    expect(result.outcome).toBe("pushed");
    expect(sent.get(job.jobId)!.tokenFrom).toBeUndefined();
    expect(w.fake.secrets().map((x) => x.name)).not.toContain(`projects/test-project/secrets/agent-work-job-${job.jobId}`);
    await w.backend.destroy(worker);
  });
});
