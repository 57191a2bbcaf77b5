/**
 * `agent-work doctor` as a real process, on a controller's configuration with the store, the
 * GitHub App, the local sandbox, an ssh host and a k8s namespace, against stand-ins on 127.0.0.1:
 * GitHub's App API (which checks the app's JWT with its public key), a real sshd, and the fake
 * Kubernetes API answering SelfSubjectAccessReviews. Results are printed as they come.
 */
import { createVerify, generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { execa } from "execa";
import { parseAllDocuments } from "yaml";
import { K8S_BACKEND_VERBS } from "../../src/cli/doctor/check-k8s.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { compiledArgs } from "../support/compiled-args.js";
import { startFakeK8s, type FakeK8s } from "../support/fake-k8s.js";
import { PINNED_CLI_VERSIONS } from "../support/agent-clis.js";
import { startSshd, type TestSshd } from "../support/sshd.js";
import { answerAsync } from "../support/answer-async.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = path.join(ROOT, "src", "cli", "main.ts");
const APP_ID = "4242";
const keys = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

/** GitHub's App endpoints, with the shapes GitHub answers; deliveries can be held back to show progress. */
interface FakeApp {
  url: string;
  hook: { url: string; content_type: string; insecure_ssl: string };
  deliveries: object[];
  /** Resolves once GET /app/hook/deliveries is asked; it is answered when `release()` is called. */
  holdDeliveries(): { asked: Promise<void>; release: () => void };
  server: Server;
}

async function startFakeApp(): Promise<FakeApp> {
  let hold: { asked: () => void; released: Promise<void> } | undefined;
  const app: FakeApp = {
    url: "",
    hook: { url: "https://agent-work.example.com/api/github/webhooks", content_type: "json", insecure_ssl: "0" },
    deliveries: [],
    holdDeliveries() {
      let asked!: () => void;
      let release!: () => void;
      const askedP = new Promise<void>((r) => (asked = r));
      hold = { asked, released: new Promise<void>((r) => (release = r)) };
      return { asked: askedP, release };
    },
    server: createServer(
      answerAsync(async (req, res) => {
        const send = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
        // The app's JWT: RS256 over header.payload with the App's key, issued by the App's id.
        const [h, p, sig] = /^bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1]?.split(".") ?? [];
        const valid =
          !!(h && p && sig) &&
          createVerify("RSA-SHA256").update(`${h}.${p}`).verify(keys.publicKey, Buffer.from(sig, "base64url")) &&
          String(JSON.parse(Buffer.from(p, "base64url").toString()).iss) === APP_ID;
        if (!valid) return send(401, { message: "A JSON web token could not be decoded", documentation_url: "https://docs.github.com/rest" });
        const route = (req.url ?? "").split("?")[0];
        if (route === "/api/v3/app")
          return send(200, {
            id: Number(APP_ID),
            slug: "agent-work-test",
            name: "agent-work test",
            html_url: "https://github.com/apps/agent-work-test",
            owner: { login: "octo" },
          });
        if (route === "/api/v3/app/hook/config") return send(200, app.hook);
        if (route === "/api/v3/app/hook/deliveries") {
          if (hold) {
            hold.asked();
            await hold.released;
          }
          return send(200, app.deliveries);
        }
        send(404, { message: "Not Found" });
      }),
    ),
  };
  await new Promise<void>((r) => app.server.listen(0, "127.0.0.1", r));
  app.url = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return app;
}

const delivery = (over: object) => ({
  id: 1,
  guid: "0b989ba4-242f-11e5-81e1-c7b6966d2516",
  delivered_at: "2026-12-04T10:15:00Z",
  redelivery: false,
  duration: 0.27,
  status: "OK",
  status_code: 200,
  event: "issues",
  action: "labeled",
  installation_id: 1,
  repository_id: 1,
  ...over,
});

let dir: string;
let github: FakeApp;
let sshd: TestSshd;
let k8s: FakeK8s;
let denied = new Set<string>();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-doctor-all-"));
  const db = await openStore({ dataDir: path.join(dir, "data") });
  await db.destroy();
  [github, sshd, k8s] = await Promise.all([startFakeApp(), startSshd(), startFakeK8s({ allows: (a) => !denied.has(`${a.verb} ${a.resource}`) })]);
  writeFileSync(path.join(dir, "host.key"), sshd.privateKey, { mode: 0o600 });
  writeFileSync(path.join(dir, "kubeconfig"), k8s.kubeconfigYaml());
}, 120_000);
afterAll(async () => {
  github?.server.close();
  await Promise.all([sshd?.close(), k8s?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function hostsFile(fingerprint: string): string {
  const file = path.join(dir, `hosts-${randomBytes(3).toString("hex")}.yml`);
  writeFileSync(
    file,
    `hosts:\n  - name: build-1\n    address: ${sshd.host}\n    port: ${sshd.port}\n    user: ${sshd.username}\n    privateKeyPath: ${path.join(dir, "host.key")}\n    hostKeySha256: ${fingerprint}\n    slots: 2\n`,
  );
  return file;
}

const WORKER_IMAGE = `ghcr.io/acme/agent-work-worker@sha256:${"1".repeat(64)}`;
/** A line about one agent CLI, here or on the ssh host. */
const AGENT_CLI_LINE = /^(ok|skip|warn) {2}(local|ssh host build-1): (claude|codex|opencode) \(/;

function doctor(over: Record<string, string> = {}, pathPrefix?: string) {
  const env = {
    PATH: pathPrefix ? `${pathPrefix}:${process.env.PATH}` : process.env.PATH!,
    HOME: dir,
    APP_ID,
    PRIVATE_KEY: keys.privateKey,
    WEBHOOK_SECRET: randomBytes(32).toString("hex"),
    GHE_HOST: github.url,
    GHE_PROTOCOL: "http",
    PUBLIC_URL: "https://agent-work.example.com",
    GITHUB_CLIENT_ID: "Iv1.0123456789abcdef",
    GITHUB_CLIENT_SECRET: randomBytes(20).toString("hex"),
    DATA_DIR: path.join(dir, "data"),
    SSH_HOSTS_FILE: hostsFile(sshd.hostKeySha256),
    K8S_NAMESPACE: "agent-work",
    K8S_KUBECONFIG: path.join(dir, "kubeconfig"),
    K8S_IMAGE: WORKER_IMAGE,
    K8S_USER_NAMESPACE: "true",
    K8S_SECCOMP_PROFILE: "localhost/agent-work-bwrap.json",
    // The agent CLIs' lines depend on what this machine has installed where the worker looks:
    // doctor-agent-clis.test.ts checks them. With the command preset as default none of them fails.
    DEFAULT_AGENT: "command",
    ...over,
  };
  return execa(process.execPath, [...compiledArgs(CLI), "doctor"], { cwd: dir, env, extendEnv: false, reject: false });
}

describe("agent-work doctor, all of it", () => {
  it("passes a complete setup, printing each result as soon as it has it", { timeout: 180_000 }, async () => {
    github.deliveries = [delivery({ id: 2 }), delivery({ id: 1, event: "installation", action: "created" })];
    const held = github.holdDeliveries();
    const run = doctor();
    let printed = "";
    run.stdout!.on("data", (d: Buffer) => (printed += d.toString()));
    // While GitHub has not answered the deliveries yet (it will not until released), what came
    // before is already on the screen: were the report printed at the end, this would wait forever.
    await held.asked;
    while (!printed.includes("ok    webhook url")) await new Promise((r) => setTimeout(r, 50));
    expect(printed).toContain("ok    github app: APP_ID 4242 is agent-work-test");
    expect(printed).not.toContain("webhook deliveries");
    held.release();
    const r = await run;

    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines.filter((l) => AGENT_CLI_LINE.test(l))).toHaveLength(6);
    expect(lines.filter((l) => !l.startsWith("      →") && !AGENT_CLI_LINE.test(l))).toEqual([
      "checking the configuration…",
      "ok    configuration: valid; backends local, ssh, k8s; store SQLite in " + path.join(dir, "data"),
      "checking the store…",
      `ok    store: SQLite ${path.join(dir, "data", "agent-work.sqlite")} opens; 0 jobs`,
      "checking the GitHub App and its webhook…",
      "ok    github app: APP_ID 4242 is agent-work-test (https://github.com/apps/agent-work-test); the private key belongs to it",
      "ok    webhook url: GitHub sends webhooks to https://agent-work.example.com/api/github/webhooks",
      "ok    webhook deliveries: the last 2 were answered (latest 2026-12-04T10:15:00Z, issues)",
      "checking the local backend's sandbox…",
      "ok    local backend: git found; bubblewrap built a trivial sandbox here (own PID, IPC and UTS namespaces, fresh /proc)",
      "checking the agent CLIs on this machine…",
      "checking the ssh hosts…",
      "ok    ssh host build-1: reachable; node and git there; 0 of 2 slots in use",
      "checking the k8s backend…",
      "ok    k8s namespace agent-work: the controller may do everything the backend does there (jobs, pods and their logs, secrets)",
      `skip  k8s image ${WORKER_IMAGE}: agent CLIs: doctor cannot see which agent CLIs the worker image holds (the Kubernetes API shows no image's contents); k8s/worker.Dockerfile installs the pinned claude ${PINNED_CLI_VERSIONS["@anthropic-ai/claude-code"]}, codex ${PINNED_CLI_VERSIONS["@openai/codex"]}, opencode ${PINNED_CLI_VERSIONS["opencode-ai"]} and labels the image io.agent-work.agent-clis with them`,
      "agent-work doctor: everything checked is in place.",
    ]);
    expect(r.stdout).not.toContain(keys.privateKey.split("\n")[1]);
  });

  it("names each problem with its fix: webhook URL, failed deliveries, the sandbox, an ssh host, a missing k8s permission", { timeout: 180_000 }, async () => {
    github.hook = { url: "https://example.invalid/api/github/webhooks", content_type: "json", insecure_ssl: "0" };
    github.deliveries = [delivery({ id: 3, status: "Invalid HTTP Response: 502", status_code: 502, guid: "d-502" }), delivery({ id: 2 })];
    denied = new Set(["delete secrets", "patch jobs"]);
    // A bubblewrap that is installed but cannot make namespaces, as under Docker's default seccomp profile.
    const fake = path.join(dir, "fake-bin");
    rmSync(fake, { recursive: true, force: true });
    mkdirSync(fake);
    writeFileSync(
      path.join(fake, "bwrap"),
      '#!/bin/sh\n[ "$1" = --version ] && { echo "bubblewrap 0.8.0"; exit 0; }\necho "bwrap: No permissions to creating new namespace" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    chmodSync(path.join(fake, "bwrap"), 0o755);
    try {
      const r = await doctor({ SSH_HOSTS_FILE: hostsFile("SHA256:" + randomBytes(32).toString("base64").replace(/=+$/, "")) }, fake);
      expect(r.exitCode).toBe(1);
      const out = r.stdout;
      expect(out).toContain(
        'FAIL  webhook url: GitHub sends webhooks to https://example.invalid/api/github/webhooks, which is nowhere\n      → set "Webhook URL" in https://github.com/apps/agent-work-test (General) to https://agent-work.example.com/api/github/webhooks',
      );
      expect(out).toContain(
        "FAIL  webhook deliveries: 1 of the last 2 failed; the latest failure 2026-12-04T10:15:00Z: issues.labeled → 502 Invalid HTTP Response: 502 (delivery d-502)\n      → see https://github.com/apps/agent-work-test/advanced (Recent Deliveries",
      );
      expect(out).toMatch(
        /FAIL {2}local backend: bubblewrap is installed but cannot build the agent's sandbox here \(bwrap said: bwrap: No permissions to creating new namespace\)\. .*--security-opt seccomp=unconfined/,
      );
      expect(out).toMatch(/FAIL {2}ssh host build-1: .*\n {6}→ check its address, user, key and host key fingerprint in SSH_HOSTS_FILE/);
      expect(out).toContain("FAIL  k8s namespace agent-work: the controller may not patch batch/jobs, delete secrets\n      → apply k8s/rbac.yaml");
      expect(out).toMatch(/agent-work doctor: 5 problems to fix\.$/);
    } finally {
      github.hook = { url: "https://agent-work.example.com/api/github/webhooks", content_type: "json", insecure_ssl: "0" };
      denied = new Set();
    }
  });

  it("says when APP_ID and the private key do not belong together", { timeout: 120_000 }, async () => {
    const other = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const r = await doctor({ PRIVATE_KEY: other.privateKey, SSH_HOSTS_FILE: "", K8S_NAMESPACE: "", K8S_KUBECONFIG: "", K8S_IMAGE: "" });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(
      /FAIL {2}github app: GET http:\/\/127\.0\.0\.1:\d+\/api\/v3\/app with the app's JWT: 401 A JSON web token could not be decoded.*\n {6}→ APP_ID and PRIVATE_KEY do not belong together/,
    );
    expect(r.stdout).not.toContain("webhook url");
  });

  it("asks about exactly the verbs k8s/rbac.yaml grants the controller", () => {
    const docs = parseAllDocuments(readFileSync(path.join(ROOT, "k8s", "rbac.yaml"), "utf8")).map(
      (d) => d.toJS() as { kind?: string; rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] },
    );
    const granted = docs
      .find((d) => d.kind === "Role")!
      .rules!.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g}/${res}`))));
    const asked = K8S_BACKEND_VERBS.flatMap((r) => r.verbs.map((v) => `${v} ${r.group}/${r.resource}${"subresource" in r ? `/${r.subresource}` : ""}`));
    expect(asked.sort()).toEqual(granted.sort());
  });
});
