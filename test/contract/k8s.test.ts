import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { buildInputSecret, buildWorkerJob } from "../../src/backends/k8s/build-job.js";
import { k8s, k8sBackendFromConfig, type K8sBackendOptions } from "../../src/backends/k8s/k8s-backend.js";
import { inputSecretName, jobName } from "../../src/backends/k8s/k8s-names.js";
import { createKubeApi, loadKubeConfig } from "../../src/backends/k8s/kube-api.js";
import { loadBackendModule } from "../../src/backends/registry.js";
import type { Backend, JobSpec, RunSpec } from "../../src/backends/types.js";
import type { ProgressEvent } from "../../src/worker/protocol.js";
import { workerDir } from "../../src/worker/worker-script-path.js";
import { startFakeK8s, type FakeK8s } from "../support/fake-k8s.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { backendContract } from "./backend.js";
import { eventually, processesUnder, type HostProcess } from "./live-processes.js";
import { fakeAgentSpec } from "../support/run-spec.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));
/** The worker script's folder, as the image holds it at /app/worker (the entry file and lib/). */
const WORKER_DIR = workerDir;
const NAMESPACE = "agent-work";

backendContract("k8s", async () => {
  const fake = await startFakeK8s({ imageFiles: { "/app/worker": WORKER_DIR } });
  const backend = k8s.create({
    api: createKubeApi(fake.kubeConfig()),
    namespace: NAMESPACE,
    image: "ghcr.io/acme/agent-work-worker:test",
    defaults: { cpu: "1", memory: "2Gi", ephemeralStorage: "10Gi" },
    maxJobs: 8,
    terminationGracePeriodSeconds: 2,
    pollIntervalMs: 50,
  });
  return {
    backend,
    cleanup: () => fake.close(),
    // A pod's processes run in its folders (volumes, the work dir) under its Job's folder.
    liveProcesses: async (w) => (await processesUnder(fake.jobDir(NAMESPACE, jobName(w.jobId)))).map((p) => `${p.pid} ${p.cmdline}`),
  };
});

describe("the k8s backend, beyond the contract", () => {
  let fake: FakeK8s;
  let git: GitServer;
  let backend: Backend;
  const token = `ghs_${randomBytes(18).toString("hex")}`;
  const never = new AbortController().signal;
  const options = (over: Partial<K8sBackendOptions> = {}): K8sBackendOptions => ({
    api: createKubeApi(fake.kubeConfig()),
    namespace: NAMESPACE,
    image: "ghcr.io/acme/agent-work-worker:test",
    defaults: { cpu: "1", memory: "2Gi", ephemeralStorage: "10Gi" },
    maxJobs: 5,
    terminationGracePeriodSeconds: 2,
    pollIntervalMs: 50,
    sleep: (ms, signal) =>
      new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        setTimeout(resolve, Math.min(ms, 50));
      }),
    ...over,
  });

  beforeAll(async () => {
    // A Kubernetes second is a quarter of a real one here: deadlines and grace periods pass quickly.
    fake = await startFakeK8s({ imageFiles: { "/app/worker": WORKER_DIR }, pullable: (image) => !image.includes("missing"), msPerSecond: 250 });
    git = await startGitServer({ acceptToken: token });
    backend = k8s.create(options());
  });
  afterAll(async () => {
    await Promise.all([fake?.close(), git?.close()]);
  });

  let n = 0;
  const newJob = (over: Partial<JobSpec> = {}): JobSpec => ({
    jobId: `k${++n}-${randomBytes(3).toString("hex")}`,
    repoFullName: "octo/demo",
    maxSeconds: 600,
    ...over,
  });

  async function spec(jobId: string, prompt: string): Promise<RunSpec> {
    return fakeAgentSpec(git, jobId, token, { prompt }, `r-${jobId}`);
  }

  const requestsFor = (jobId: string) =>
    fake.requests.filter(
      (r) => r.path.includes(jobName(jobId)) || JSON.stringify(r.body ?? "").includes(jobName(jobId)) || (r.query.labelSelector ?? "").endsWith(`=${jobId}`),
    );
  const steps = (events: ProgressEvent[]) => events.flatMap((e) => (e.type === "step" ? [`${e.step}:${e.status}`] : []));
  const ALL_STEPS = [
    "clone:started",
    "clone:finished",
    "agent:started",
    "agent:finished",
    "commit:started",
    "commit:finished",
    "push:started",
    "push:finished",
  ];

  it("is found in the registry by its name, and reports its configured maximum", async () => {
    expect(await loadBackendModule("k8s")).toBe(k8s);
    expect((await backend.capacity()).max).toBe(5);
  });

  it("sends exactly the Job it means over the wire, with the controller's token, sized from the machine type", async () => {
    const job = newJob({ machineType: "e2-standard-4", maxSeconds: 1200 });
    const w = await backend.create(job, never);
    const post = fake.requests.find(
      (r) => r.method === "POST" && r.path === `/apis/batch/v1/namespaces/${NAMESPACE}/jobs` && JSON.stringify(r.body).includes(jobName(job.jobId)),
    )!;
    expect(post.authorization).toBe(`Bearer ${fake.token}`);
    expect(post.contentType).toBe("application/json");
    // Nothing lost or renamed by client-node's serializer: the body is the pure function's output.
    expect(post.body).toEqual(
      buildWorkerJob(job, w.createdAt, {
        namespace: NAMESPACE,
        image: "ghcr.io/acme/agent-work-worker:test",
        resources: { cpu: "4", memory: "16Gi" },
        ephemeralStorage: "10Gi",
        ttlSecondsAfterFinished: 600,
        runAsUser: 1000,
        nodePath: "node",
        workerScript: "/app/worker/agent-work-worker.mjs",
        terminationGracePeriodSeconds: 2,
      }),
    );
    expect(w).toEqual({
      id: `k8s-${job.jobId}`,
      backend: "k8s",
      jobId: job.jobId,
      createdAt: w.createdAt,
      meta: expect.objectContaining({ namespace: NAMESPACE, jobName: jobName(job.jobId), repoFullName: "octo/demo", maxSeconds: "1200", phase: "suspended" }),
    });
    // Suspended: no pod until run() has put the input in place.
    expect(fake.pods(NAMESPACE).filter((p) => p.metadata.labels["agent-work-job"] === job.jobId)).toEqual([]);
    await backend.destroy(w);
  });

  it("adopts the Job on 409 AlreadyExists, and refuses a Job by that name it did not make", async () => {
    const job = newJob();
    const first = await backend.create(job, never);
    const second = await backend.create(job, never);
    expect(second).toEqual(first);
    expect(requestsFor(job.jobId).map((r) => `${r.method} ${r.status}`)).toEqual(["POST 201", "POST 409", "GET 200"]);
    await backend.destroy(first);

    fake.put("Job", NAMESPACE, { metadata: { name: "agent-work-someone-else", labels: { app: "theirs" } }, spec: { suspend: true } });
    await expect(backend.create(newJob({ jobId: "someone-else" }), never)).rejects.toThrow(
      /agent-work-someone-else exists in agent-work but was not made by agent-work/,
    );
  });

  it("lists by label selector, and only what it made", async () => {
    const w = await backend.create(newJob(), never);
    fake.put("Job", NAMESPACE, { metadata: { name: "unrelated", labels: { "agent-work-job": "forged" } }, spec: {} });
    const listed = await backend.list();
    expect(listed.map((x) => x.id)).toContain(w.id);
    expect(listed.map((x) => x.jobId)).not.toContain("forged");
    expect(listed.map((x) => x.jobId)).not.toContain("someone-else");
    const get = fake.requests.filter((r) => r.method === "GET" && r.path === `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`).at(-1)!;
    expect(get.query).toEqual({ labelSelector: "app.kubernetes.io/managed-by=agent-work,app.kubernetes.io/name=agent-work-worker,agent-work-job" });
    await backend.destroy(w);
  });

  it("runs with the input in a Secret owned by the Job, starts it with the deadline left, and the token travels nowhere else", async () => {
    // The controller's clock, moved by hand: 7 s pass between create() and run(), whatever the
    // machine's load makes of the real ones in between.
    let clock = Date.now();
    const clocked = k8s.create(options({ now: () => clock }));
    const job = newJob();
    const w = await clocked.create(job, never);
    const input = await spec(job.jobId, "FAKE_AGENT:edit");
    clock += 7_000;
    const events: ProgressEvent[] = [];
    const result = await clocked.run(w, input, (e) => events.push(e), never);
    expect(result).toMatchObject({ outcome: "pushed", aborted: false });
    expect(steps(events)).toEqual(ALL_STEPS);

    const mine = requestsFor(job.jobId);
    const secretPost = mine.find((r) => r.method === "POST" && r.path.endsWith("/secrets"))!;
    const jobUid = fake.jobs(NAMESPACE).find((j) => j.metadata.name === jobName(job.jobId))!.metadata.uid;
    expect(secretPost.body).toEqual(buildInputSecret({ jobId: job.jobId, repoFullName: "octo/demo", jobUid, namespace: NAMESPACE }, input));
    const patch = mine.find((r) => r.method === "PATCH")!;
    expect(patch.contentType).toBe("application/merge-patch+json");
    // The job's 600 s less the 7 s since create(): the dead-man switch counts from create().
    expect(patch.body).toEqual({ spec: { suspend: false, activeDeadlineSeconds: 593 } });
    // The token: only inside the Secret's data (base64), never in clear in any request, the Job or the pod.
    const b64 = (secretPost.body as { data: Record<string, string> }).data["input.json"]!;
    for (const r of fake.requests) {
      const wire = JSON.stringify(r);
      expect(wire.includes(token), `${r.method} ${r.path}`).toBe(false);
      if (r !== secretPost) expect(wire.includes(b64), `${r.method} ${r.path}`).toBe(false);
    }
    expect(JSON.stringify([fake.jobs(NAMESPACE), fake.pods(NAMESPACE)])).not.toContain(token);
    // A worker runs once.
    expect(await clocked.run(w, input, () => {}, never)).toMatchObject({
      outcome: "error",
      message: expect.stringMatching(/already been started \(succeeded\)/),
    });

    await clocked.destroy(w);
    expect(await eventually(async () => !fake.secrets(NAMESPACE).some((s) => s.metadata.name === inputSecretName(job.jobId)))).toBe(true);
  });

  it("keeps the token out of every process's argv and environment while the agent runs", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    const ac = new AbortController();
    let seen: HostProcess[] = [];
    await backend.run(
      w,
      await spec(job.jobId, "FAKE_AGENT:sleep"),
      (e) => {
        if (e.type === "log" && e.line === "fake agent: sleeping") {
          void processesUnder(fake.jobDir(NAMESPACE, jobName(job.jobId))).then((p) => {
            seen = p;
            ac.abort();
          });
        }
      },
      ac.signal,
    );
    expect(seen.length).toBeGreaterThan(1);
    for (const p of seen) expect(`${p.cmdline} ${p.environ}`, p.cmdline).not.toContain(token);
    await backend.destroy(w);
  });

  it("cancel deletes the Job with its pods, and the Secret goes with it", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    const ac = new AbortController();
    const result = await backend.run(
      w,
      await spec(job.jobId, "FAKE_AGENT:sleep"),
      (e) => {
        if (e.type === "log" && e.line === "fake agent: sleeping") ac.abort();
      },
      ac.signal,
    );
    expect(result).toMatchObject({ outcome: "error", aborted: true });
    const del = requestsFor(job.jobId).find((r) => r.method === "DELETE")!;
    expect(del).toMatchObject({
      path: `/apis/batch/v1/namespaces/${NAMESPACE}/jobs/${jobName(job.jobId)}`,
      query: { propagationPolicy: "Background" },
      status: 200,
    });
    const gone = async () =>
      !fake.jobs(NAMESPACE).some((j) => j.metadata.name === jobName(job.jobId)) &&
      !fake.pods(NAMESPACE).some((p) => p.metadata.labels["agent-work-job"] === job.jobId) &&
      !fake.secrets(NAMESPACE).some((s) => s.metadata.name === inputSecretName(job.jobId)) &&
      (await processesUnder(fake.jobDir(NAMESPACE, jobName(job.jobId)))).length === 0;
    expect(await eventually(gone)).toBe(true);
    // destroy() after a cancel: the Job is gone already, and 404 is success.
    await backend.destroy(w);
    expect(
      requestsFor(job.jobId)
        .filter((r) => r.method === "DELETE")
        .map((r) => `${r.query.propagationPolicy} ${r.status}`),
    ).toEqual(["Background 200", "Foreground 404"]);
  });

  it("destroy deletes Foreground and returns once the Job and its pods are gone", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    let destroyed: Promise<void> | undefined;
    let podsWhenDestroyed = -1;
    await backend.run(
      w,
      await spec(job.jobId, "FAKE_AGENT:sleep"),
      (e) => {
        if (e.type === "log" && e.line === "fake agent: sleeping") {
          destroyed = backend.destroy(w).then(() => {
            podsWhenDestroyed = fake.pods(NAMESPACE).filter((p) => p.metadata.labels["agent-work-job"] === job.jobId).length;
          });
        }
      },
      never,
    );
    await destroyed;
    expect(podsWhenDestroyed).toBe(0);
    const del = requestsFor(job.jobId).find((r) => r.method === "DELETE")!;
    expect(del.query).toEqual({ propagationPolicy: "Foreground" });
  });

  it("lets Kubernetes' deadline end a pod that outlives the job, and reports timed_out", async () => {
    const job = newJob({ maxSeconds: 3 });
    // The limit counts from create(): the spec is made first, so that on a loaded machine the
    // worker is not already past its limit when run() starts (that answer is a different one).
    const input = await spec(job.jobId, "FAKE_AGENT:sleep");
    const w = await backend.create(job, never);
    const result = await backend.run(w, input, () => {}, never);
    expect(result).toMatchObject({ outcome: "timed_out", aborted: false, message: "the worker ran past its 3s limit and Kubernetes stopped it" });
    const failed = fake
      .jobs(NAMESPACE)
      .find((j) => j.metadata.name === jobName(job.jobId))!
      .status.conditions.find((c: { type: string }) => c.type === "Failed");
    expect(failed).toMatchObject({ status: "True", reason: "DeadlineExceeded" });
    expect(await eventually(async () => (await processesUnder(fake.jobDir(NAMESPACE, jobName(job.jobId)))).length === 0)).toBe(true);
    await backend.destroy(w);
  });

  it("reads the whole log across a broken connection: every step once, one result", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    const events: ProgressEvent[] = [];
    let broken = 0;
    const result = await backend.run(
      w,
      await spec(job.jobId, "FAKE_AGENT:edit"),
      (e) => {
        events.push(e);
        if (e.type === "step" && e.step === "clone" && e.status === "finished") broken = fake.breakLogStreams();
      },
      never,
    );
    expect(broken).toBe(1);
    expect(result.outcome).toBe("pushed");
    expect(steps(events)).toEqual(ALL_STEPS);
    expect(events.filter((e) => e.type === "result")).toHaveLength(1);
    const logs = requestsFor(job.jobId).filter((r) => r.path.endsWith("/log"));
    expect(logs.length).toBeGreaterThanOrEqual(2);
    expect(logs[1]!.query).toMatchObject({ follow: "true", timestamps: "true", sinceTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) });
    await backend.destroy(w);
  });

  it("replaces a Secret that a run which died before starting the Job left behind", async () => {
    const job = newJob();
    const w = await backend.create(job, never);
    const jobUid = fake.jobs(NAMESPACE).find((j) => j.metadata.name === jobName(job.jobId))!.metadata.uid;
    fake.put("Secret", NAMESPACE, {
      metadata: { name: inputSecretName(job.jobId), ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: jobName(job.jobId), uid: jobUid }] },
      data: { "input.json": Buffer.from("{}").toString("base64") },
    });
    const result = await backend.run(w, await spec(job.jobId, "FAKE_AGENT:none"), () => {}, never);
    expect(result.outcome).toBe("no_changes");
    expect(
      requestsFor(job.jobId)
        .filter((r) => r.path.includes("/secrets"))
        .map((r) => `${r.method} ${r.status}`),
    ).toEqual(["POST 409", "DELETE 200", "POST 201"]);
    await backend.destroy(w);
  });

  it("retries 429 and 5xx answers, and stops at once on 403 with advice", async () => {
    const jobsPath = new RegExp(`^/apis/batch/v1/namespaces/${NAMESPACE}/jobs$`);
    fake.failNext({ method: "POST", path: jobsPath }, { status: 503, reason: "ServiceUnavailable", message: "etcdserver: leader changed" });
    fake.failNext({ method: "POST", path: jobsPath }, { status: 429, reason: "TooManyRequests", message: "slow down" });
    const before = fake.requests.length;
    const w = await backend.create(newJob(), never);
    expect(
      fake.requests
        .slice(before)
        .filter((r) => r.method === "POST")
        .map((r) => r.status),
    ).toEqual([503, 429, 201]);
    await backend.destroy(w);

    fake.failNext(
      { method: "POST", path: jobsPath },
      {
        status: 403,
        reason: "Forbidden",
        message: 'jobs.batch is forbidden: User "system:serviceaccount:agent-work:agent-work-controller" cannot create resource "jobs"',
      },
    );
    const at = fake.requests.length;
    await expect(backend.create(newJob(), never)).rejects.toThrow(/Forbidden \(403\): jobs\.batch is forbidden.*k8s\/rbac\.yaml/);
    expect(fake.requests.slice(at).filter((r) => r.method === "POST")).toHaveLength(1);
  });

  it("fails the run with Kubernetes' reason when the worker's image cannot be pulled", async () => {
    const other = k8s.create(options({ image: "ghcr.io/acme/missing:1" }));
    const job = newJob();
    const w = await other.create(job, never);
    const result = await other.run(w, await spec(job.jobId, "FAKE_AGENT:edit"), () => {}, never);
    expect(result).toMatchObject({
      outcome: "error",
      aborted: false,
      message: expect.stringMatching(/^the worker container cannot start: (ErrImagePull|ImagePullBackOff)/),
    });
    await other.destroy(w);
  });

  it("says how a worker that died without a result ended", async () => {
    const other = k8s.create(options({ workerScript: "/app/worker/not-there.mjs" }));
    const job = newJob();
    const w = await other.create(job, never);
    const result = await other.run(w, await spec(job.jobId, "FAKE_AGENT:edit"), () => {}, never);
    expect(result).toMatchObject({
      outcome: "error",
      aborted: false,
      message: expect.stringMatching(/^the worker stopped \(Error, exit code 1\) without reporting a result: .*MODULE_NOT_FOUND/),
    });
    await other.destroy(w);
  });

  it("with agentSandbox none, hands the worker an unsandboxed agent and says so in the input", async () => {
    const other = k8s.create(options({ agentSandbox: "none" }));
    const job = newJob();
    const w = await other.create(job, never);
    expect((await other.run(w, await spec(job.jobId, "FAKE_AGENT:none"), () => {}, never)).outcome).toBe("no_changes");
    const post = requestsFor(job.jobId).find((r) => r.method === "POST" && r.path.endsWith("/secrets"))!;
    const sent = JSON.parse(Buffer.from((post.body as { data: Record<string, string> }).data["input.json"]!, "base64").toString("utf8")) as RunSpec;
    expect(sent.sandbox).toEqual({ kind: "none" });
    await other.destroy(w);
  });

  it("with agentSandbox none, refuses a run under network: allowlist before its input leaves: the agent would share the proxy's network", async () => {
    const other = k8s.create(options({ agentSandbox: "none" }));
    const job = newJob();
    const w = await other.create(job, never);
    const base = await spec(job.jobId, "FAKE_AGENT:edit");
    const result = await other.run(
      w,
      { ...base, sandbox: { kind: "bwrap", roBinds: [], shareNet: false, egress: { allow: ["api.example.com"] } } },
      () => {},
      never,
    );
    expect(result).toMatchObject({
      outcome: "error",
      aborted: false,
      message: expect.stringMatching(/^network: allowlist cannot be held on this k8s backend: K8S_AGENT_SANDBOX=none/),
    });
    expect(requestsFor(job.jobId).filter((r) => r.method === "POST" && r.path.endsWith("/secrets"))).toEqual([]);
    await other.destroy(w);
  });

  it("refuses to run pods as root, and a machine type it cannot size, before calling the API", async () => {
    expect(() => k8s.create(options({ runAsUser: 0 }))).toThrow(/never runs worker pods as root/);
    const at = fake.requests.length;
    await expect(backend.create(newJob({ machineType: "n2-custom-4-8192" }), never)).rejects.toThrow(/means nothing to the k8s backend/);
    expect(fake.requests.length).toBe(at);
  });

  it("connects with a kubeconfig file, as K8S_KUBECONFIG gives it", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "k8s-kubeconfig-"));
    try {
      const file = path.join(dir, "kubeconfig.yaml");
      await writeFile(file, fake.kubeconfigYaml());
      const fromConfig = k8sBackendFromConfig(
        {
          namespace: NAMESPACE,
          kubeconfig: file,
          image: "x",
          cpu: "1",
          memory: "1Gi",
          ephemeralStorage: "1Gi",
          maxJobs: 1,
          ttlSecondsAfterFinished: 60,
          runAsUser: 1000,
          agentSandbox: "bwrap",
        },
        { pollIntervalMs: 50 },
      );
      const w = await fromConfig.create(newJob(), never);
      expect((await createKubeApi(loadKubeConfig({ kubeconfig: file })).listJobs(NAMESPACE, `agent-work-job=${w.jobId}`)).map((j) => j.metadata?.name)).toEqual(
        [jobName(w.jobId)],
      );
      await fromConfig.destroy(w);
      expect(() => loadKubeConfig({}, {})).toThrow(/K8S_KUBECONFIG is not set and the controller is not running in a Kubernetes pod/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("needs exactly the verbs k8s/rbac.yaml grants: every call it made is allowed, and every grant was used", async () => {
    const docs = parseAllDocuments(await readFile(new URL("../../k8s/rbac.yaml", import.meta.url), "utf8")).map(
      (d) => d.toJS() as { kind: string; rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] },
    );
    const role = docs.find((d) => d.kind === "Role")!;
    const granted = new Set(
      role.rules!.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups[0] ? `${r.apiGroups[0]}/` : ""}${res} ${v}`))),
    );
    const used = new Set(
      fake.requests.map((r) => {
        const m = /^\/(?:api\/v1|apis\/(batch)\/v1)\/namespaces\/[^/]+\/([a-z]+)(?:\/([^/]+)(?:\/([a-z]+))?)?$/.exec(r.path)!;
        const [, group, resource, name, sub] = m;
        const verb = { POST: "create", PATCH: "patch", DELETE: "delete", GET: name ? "get" : "list" }[r.method]!;
        return `${group ? `${group}/` : ""}${resource}${sub ? `/${sub}` : ""} ${verb}`;
      }),
    );
    expect([...used].sort()).toEqual([...granted].sort());
  });
});
