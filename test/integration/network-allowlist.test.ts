/**
 * `network: allowlist` through the real worker script on every backend: local (root here: the
 * agent runs as nobody in bubblewrap with a network namespace of its own), ssh (a real sshd on
 * 127.0.0.1, an unprivileged login user: bubblewrap makes a user namespace too), gce (the fake
 * Compute API through the real client, the VM's SSH a real sshd) and k8s (the fake API server runs
 * the pod as a local process). A hostile agent tries every way out; only the allowed host answers,
 * through the worker's proxy, which adds the model key itself; every refusal is recorded with its
 * host and port. Then through the controller: the repository's config, MODEL_PROXY, NETWORK_DEFAULT,
 * and the final status comment. (The VM's and the pod's own walls, beneath the worker's, are tested
 * in vm-egress-firewall.test.ts and worker-network-policy.test.ts.)
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NodeSSH } from "node-ssh";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { local } from "../../src/backends/local/local-backend.js";
import { gce, type GceBackend } from "../../src/backends/gce/gce-backend.js";
import { k8s } from "../../src/backends/k8s/k8s-backend.js";
import { createKubeApi } from "../../src/backends/k8s/kube-api.js";
import { ssh, type SshBackend } from "../../src/backends/ssh/ssh-backend.js";
import type { Backend, RunSpec } from "../../src/backends/types.js";
import type { ProgressEvent } from "../../src/worker/protocol.js";
import { MODEL_KEY_PLACEHOLDER } from "../../src/worker/agent-sandbox.js";
import { workerDir } from "../../src/worker/worker-script-path.js";
import { startFakeGcp, type FakeGcp } from "../support/fake-gcp.js";
import { startFakeK8s, type FakeK8s } from "../support/fake-k8s.js";
import { startGitServer, type GitServer } from "../support/git-http-server.js";
import { startHarness } from "../support/harness.js";
import { startSshd, type TestSshd } from "../support/sshd.js";
import { OWNER, REPO } from "../support/payloads.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url)).replace(/\/$/, "");
const TOKEN = `ghs_${randomBytes(18).toString("hex")}`;
const REAL_KEY = `sk-real-${randomBytes(16).toString("hex")}`;
const PLACEHOLDER = "sk-placeholder-the-proxy-replaces-it";
const never = new AbortController().signal;

let git: GitServer;
let root: string;
/** A server the agent must not reach (stands for the controller's own port, or anything on the LAN). */
let forbidden: http.Server;
/** The model API: the one allowed host, which records the key it is sent. */
let model: http.Server;
const modelSaw: { path: string; key: string | undefined }[] = [];

/** The sshd's host key blob (base64), as a VM's guest agent would publish it. */
async function hostKeyBlob(server: TestSshd): Promise<string> {
  const client = new NodeSSH();
  let blob = "";
  await client
    .connect({
      host: server.host,
      port: server.port,
      username: "probe",
      password: "x",
      readyTimeout: 5000,
      hostVerifier: (key: Buffer) => ((blob = key.toString("base64")), false),
    })
    .catch(() => undefined);
  client.dispose();
  if (!blob) throw new Error("the test sshd showed no host key");
  return blob;
}

/** The server's port, listening on 127.0.0.1 from the first call on. */
const portOf = async (server: http.Server) => {
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
};

beforeAll(async () => {
  git = await startGitServer({ acceptToken: TOKEN });
  root = await mkdtemp(path.join(os.tmpdir(), "agent-work-egress-"));
  forbidden = http.createServer((_req, res) => res.end("you should not be here\n"));
  model = http.createServer((req, res) => {
    modelSaw.push({ path: req.url ?? "", key: req.headers["x-api-key"] as string | undefined });
    req.resume();
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}\n');
  });
});

afterAll(async () => {
  await git?.close();
  forbidden?.close();
  model?.close();
  await rm(root, { recursive: true, force: true });
});

/** Runs the hostile network agent through `backend` and checks every promise of the allow-list. */
async function hostileAgentThrough(backend: Backend, jobId: string) {
  const forbiddenPort = await portOf(forbidden);
  const modelPort = await portOf(model);
  const modelHost = `127.0.0.1:${modelPort}`;
  modelSaw.length = 0;
  const { cloneUrl } = await git.createRepo("octo", jobId, { "README.md": "# egress\n" });
  const spec: RunSpec = {
    jobId,
    cloneUrl,
    baseBranch: "main",
    branch: `agent-work/${jobId}`,
    token: TOKEN,
    agentArgv: ["node", path.join(FIXTURES, "network-agent.mjs")],
    prompt: "probe the network",
    commitMessage: `agent-work: ${jobId}`,
    author: { name: "agent-work[bot]", email: "bot@example.com" },
    agentTimeoutSeconds: 60,
    agentEnv: {
      MODEL_API_KEY: PLACEHOLDER,
      PROBE_DIRECT: `127.0.0.1:${forbiddenPort}`,
      PROBE_ALLOWED: modelHost,
      PROBE_DENIED: "evil.example:80",
    },
    sandbox: {
      kind: "bwrap",
      roBinds: [FIXTURES],
      shareNet: false,
      limits: { memoryMb: 1024, maxProcesses: 128, maxDiskMb: 256 },
      egress: { allow: [modelHost], credentials: [{ host: modelHost, upstream: `http://${modelHost}`, header: "x-api-key", value: REAL_KEY }] },
    },
  };
  const w = await backend.create({ jobId: spec.jobId, repoFullName: `octo/${jobId}`, maxSeconds: 120 }, never);
  const events: ProgressEvent[] = [];
  const result = await backend.run(w, spec, (e) => events.push(e), never).finally(() => backend.destroy(w));
  const lines = events.flatMap((e) => (e.type === "log" ? [e.line] : []));
  const probes = Object.fromEntries(
    lines
      .filter((l) => l.startsWith("probe: "))
      .map((l) => {
        const p = JSON.parse(l.slice("probe: ".length)) as { name: string; ok: boolean; detail: string };
        return [p.name, p];
      }),
  );

  expect(result.outcome, JSON.stringify({ result, lines })).toBe("pushed");
  expect(Object.keys(probes)).toHaveLength(10);
  // Every way out but one failed...
  for (const [name, p] of Object.entries(probes)) {
    if (name === "the allowed host through the proxy") continue;
    expect(p.ok, `${name}: ${p.detail}`).toBe(false);
  }
  // ...and that one worked, with the real key added by the proxy, never the agent's placeholder.
  expect(probes["the allowed host through the proxy"]).toMatchObject({ ok: true });
  expect(modelSaw).toEqual([{ path: "/v1/echo", key: REAL_KEY }]);
  // The agent's own environment never held the real key.
  const envDump = (await git.readFile("octo", jobId, spec.branch, "ENV_DUMP.txt")) ?? "";
  expect(envDump).toContain(`MODEL_API_KEY=${PLACEHOLDER}`);
  expect(envDump).toContain("HTTPS_PROXY=http://127.0.0.1:3128");
  expect(envDump).not.toContain(REAL_KEY);
  // Each refusal is recorded once per host and port, in the result and as a log line.
  const blocked = (result.blocked ?? []).map((b) => `${b.host}:${b.port}`).sort();
  expect(blocked).toEqual(["127.0.0.1:" + forbiddenPort, "169.254.169.254:80", "evil.example:80", "metadata.google.internal:80"].sort());
  for (const b of blocked) expect(lines.some((l) => l.startsWith(`network: blocked ${b} (`))).toBe(true);
  // The real key never reached the job's output either.
  expect(JSON.stringify(events)).not.toContain(REAL_KEY);
}

describe("the hostile agent under network: allowlist", () => {
  it("on the local backend (root here: the agent runs as nobody) reaches only the allowed host, through the proxy that adds the real key, and every refused attempt is recorded", async () => {
    const backend = local.create({ rootDir: root, maxConcurrent: 1, killGraceMs: 1000 });
    await hostileAgentThrough(backend, "egress-local");
  }, 120_000);

  describe("on the gce backend (Compute Engine faked on 127.0.0.1 through the real client; the VM's SSH is a real sshd on 127.0.0.1)", () => {
    let sshd: TestSshd;
    let fake: FakeGcp;
    let backend: GceBackend;
    let workRoot: string;
    beforeAll(async () => {
      sshd = await startSshd();
      const rel = `agent-work-egress-gce-${randomBytes(4).toString("hex")}`;
      workRoot = path.join(sshd.home, rel);
      fake = await startFakeGcp({ hostKeys: { "ssh-ed25519": await hostKeyBlob(sshd) } });
      backend = gce.create({
        project: "test-project",
        zones: ["us-central1-a"],
        machineType: "e2-standard-2",
        image: "projects/test-project/global/images/family/agent-work-worker",
        serviceAccount: "agent-work-worker@test-project.iam.gserviceaccount.com",
        network: "default",
        externalIp: false,
        networkTags: ["agent-work-worker"],
        diskGb: 20,
        diskType: "pd-balanced",
        envLabel: `egress-${randomBytes(3).toString("hex")}`,
        spot: true,
        onDemandFallback: true,
        maxVms: 1,
        ssh: { username: sshd.username, privateKey: sshd.privateKey, port: sshd.port },
        bootTimeoutSeconds: 60,
        remoteWorkRoot: rel,
        killGraceMs: 1000,
        clientOptions: fake.clientOptions(),
      });
    }, 60_000);
    afterAll(async () => {
      await backend?.close();
      await Promise.all([sshd?.close(), fake?.close()]);
      if (workRoot) await rm(workRoot, { recursive: true, force: true });
    });

    it("the same attempts fail on the VM, the allowed host works through the proxy with the real key added, and every refusal is recorded", async () => {
      await hostileAgentThrough(backend, "egress-gce");
    }, 120_000);
  });

  describe("on the k8s backend (the fake API server on 127.0.0.1 runs the pod as a local process: the same worker, its input from the Job's Secret)", () => {
    let fake: FakeK8s;
    beforeAll(async () => {
      fake = await startFakeK8s({ imageFiles: { "/app/worker": workerDir } });
    });
    afterAll(async () => {
      await fake?.close();
    });

    it("the same attempts fail in the pod's sandbox, the allowed host works through the proxy with the real key added, and every refusal is recorded", async () => {
      const backend = k8s.create({
        api: createKubeApi(fake.kubeConfig()),
        namespace: "agent-work",
        image: "ghcr.io/acme/agent-work-worker:test",
        defaults: { cpu: "1", memory: "2Gi", ephemeralStorage: "10Gi" },
        maxJobs: 1,
        terminationGracePeriodSeconds: 2,
        pollIntervalMs: 50,
      });
      await hostileAgentThrough(backend, "egress-k8s");
    }, 120_000);
  });

  describe("on the ssh backend (a real sshd on 127.0.0.1; an unprivileged login user runs the worker and its proxy)", () => {
    let sshd: TestSshd;
    let backend: SshBackend;
    let workRoot: string;
    beforeAll(async () => {
      sshd = await startSshd();
      const rel = `agent-work-egress-${randomBytes(4).toString("hex")}`;
      workRoot = path.join(sshd.home, rel);
      backend = ssh.create({
        hosts: [
          {
            name: "egress-host",
            address: sshd.host,
            port: sshd.port,
            user: sshd.username,
            privateKey: sshd.privateKey,
            hostKeySha256: sshd.hostKeySha256,
            slots: 1,
            labels: [],
            workRoot: rel,
          },
        ],
        killGraceMs: 1000,
      });
    }, 60_000);
    afterAll(async () => {
      await backend?.close();
      await sshd?.close();
      if (workRoot) await rm(workRoot, { recursive: true, force: true });
    });

    it("the same attempts fail there, the allowed host works through the proxy with the real key added, and every refusal is recorded", async () => {
      await hostileAgentThrough(backend, "egress-ssh");
    }, 120_000);
  });
});

it("through the controller: `network: allowlist` in the repository's config, MODEL_PROXY adding the key, and the blocked connections in the final status comment", async () => {
  const forbiddenPort = await portOf(forbidden);
  const modelPort = await portOf(model);
  const modelHost = `127.0.0.1:${modelPort}`;
  modelSaw.length = 0;
  const h = await startHarness({
    repoConfigYaml: `agent: command\ncommand: ["node", "${path.join(FIXTURES, "network-agent.mjs")}", "{prompt_file}"]\nnetwork: allowlist\nallow: ["registry.npmjs.org"]\n`,
    env: {
      MODEL_API_KEY: REAL_KEY,
      AGENT_ENV_PASSTHROUGH: "MODEL_API_KEY",
      MODEL_PROXY: `${modelHost},x-api-key,MODEL_API_KEY,http://${modelHost}`,
    },
  });
  try {
    const probes = { PROBE_DIRECT: `127.0.0.1:${forbiddenPort}`, PROBE_ALLOWED: modelHost, PROBE_DENIED: "evil.example:80" };
    expect((await h.deliverLabel({ body: `Probe the network.\nPROBES: ${JSON.stringify(probes)}` })).status).toBe(200);
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job?.state, JSON.stringify(h.github.calls.filter((c) => c.method !== "GET").map((c) => c.body))).toBe("succeeded");
    expect(modelSaw).toEqual([{ path: "/v1/echo", key: REAL_KEY }]);
    const envDump = (await h.git.readFile(OWNER, REPO, job!.branch!, "ENV_DUMP.txt")) ?? "";
    expect(envDump).toContain(`MODEL_API_KEY=${MODEL_KEY_PLACEHOLDER}`);
    expect(envDump).not.toContain(REAL_KEY);
    const final = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
    expect(final, final).toMatch(/\*\*Network:\*\* 4 connections blocked by the allow-list: /);
    for (const hostPort of ["evil.example:80", "169.254.169.254:80", "metadata.google.internal:80", `127.0.0.1:${forbiddenPort}`])
      expect(final, final).toContain(`\`${hostPort}\``);
    const log = (await h.controller.logs.read(job!.id)).map((l) => l.line);
    expect(log).toContain("network: blocked evil.example:80 (not in the allow-list)");
    // The key went from the controller to the proxy only: no log, comment or check run holds it.
    expect(JSON.stringify(h.github.calls)).not.toContain(REAL_KEY);
    expect(h.logLines.join("\n")).not.toContain(REAL_KEY);
    expect(JSON.stringify(log)).not.toContain(REAL_KEY);
  } finally {
    await h.close();
  }
}, 120_000);

it("with NETWORK_DEFAULT=allowlist, a repository that names no network gets the allow-list: NETWORK_ALLOW_DEFAULT's hosts and EGRESS_CREDENTIALS' (the token added by the proxy) through the proxy, nothing else", async () => {
  const forbiddenPort = await portOf(forbidden);
  const modelPort = await portOf(model);
  const modelHost = `127.0.0.1:${modelPort}`;
  modelSaw.length = 0;
  const h = await startHarness({
    repoConfigYaml: `agent: command\ncommand: ["node", "${path.join(FIXTURES, "network-agent.mjs")}", "{prompt_file}"]\n`,
    // The "registry" here is the model server again: its host is allowed by the credential rule alone.
    env: {
      NETWORK_DEFAULT: "allowlist",
      NETWORK_ALLOW_DEFAULT: "registry.npmjs.org",
      REGISTRY_AUTH: REAL_KEY,
      EGRESS_CREDENTIALS: `${modelHost},x-api-key,REGISTRY_AUTH,http://${modelHost}`,
    },
  });
  try {
    const probes = { PROBE_DIRECT: `127.0.0.1:${forbiddenPort}`, PROBE_ALLOWED: modelHost, PROBE_DENIED: "evil.example:80" };
    expect((await h.deliverLabel({ body: `Probe the network.\nPROBES: ${JSON.stringify(probes)}` })).status).toBe(200);
    await h.settle();
    const [job] = await h.controller.store.list();
    expect(job?.state).toBe("succeeded");
    const log = (await h.controller.logs.read(job!.id)).map((l) => l.line);
    expect(log).toContain(`network: allow-list (registry.npmjs.org, ${modelHost}) through the worker's proxy; no other way out`);
    const probed = Object.fromEntries(
      log
        .filter((l) => l.startsWith("probe: "))
        .map((l) => JSON.parse(l.slice(7)) as { name: string; ok: boolean })
        .map((p) => [p.name, p.ok]),
    );
    expect(probed).toMatchObject({
      "the allowed host through the proxy": true,
      "direct tcp to a local server": false,
      "the allowed host without the proxy": false,
      "a denied host through the proxy": false,
    });
    // The agent sent no key (its MODEL_API_KEY is unset here); the proxy added the token.
    expect(modelSaw).toEqual([{ path: "/v1/echo", key: REAL_KEY }]);
    expect(JSON.stringify(log)).not.toContain(REAL_KEY);
    expect(JSON.stringify(h.github.calls)).not.toContain(REAL_KEY);
    expect(job!.result?.blocked?.map((b) => `${b.host}:${b.port}`)).toContain("evil.example:80");
  } finally {
    await h.close();
  }
}, 120_000);
