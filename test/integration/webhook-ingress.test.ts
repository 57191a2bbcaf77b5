import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import type { Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { JobStore } from "../../src/store/job-store.js";
import { RequestStore } from "../../src/store/request-store.js";
import type { Database } from "../../src/store/schema.js";
import { compiledArgs } from "../support/compiled-args.js";
import { freePort } from "../support/harness.js";
import { checkRunPayload, commentPayload, labeledPayload } from "../support/payloads.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENTRY = fileURLToPath(new URL("../support/ingress-controller.ts", import.meta.url));
const MB = 1024 * 1024;
/** Written into every unsigned body: it must never reach the log. */
const CANARY = `UNSIGNED-CANARY-${randomBytes(6).toString("hex")}`;

interface Memory {
  rssKb: number;
  peakKb: number;
}

/** The controller's resident memory now, and its peak since the last resetPeak(). */
function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)![1]);
  return { rssKb: kb("VmRSS"), peakKb: kb("VmHWM") };
}

/** Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current resident size. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

/** A POST with full control over how the body is sent; resolves with the answer, even if the server cuts the upload short. */
function post(url: string, headers: Record<string, string>, body: Buffer | Readable): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(`${url}/api/github/webhooks`, { method: "POST", headers }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      const done = () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString("utf8") });
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", done);
      res.on("error", done);
    });
    // Once the server has answered and cut the connection, the rest of the upload fails: expected
    // (also on the socket itself, which the request lets go of once the answer has ended).
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    req.on("socket", (socket) => socket.on("error", () => undefined));
    if (Buffer.isBuffer(body)) req.end(body);
    else pipeline(body, req).catch(() => undefined);
  });
}

/** A delivery signed with the controller's real secret, with any event name and any body bytes. */
function deliverSigned(url: string, secret: string, event: string, body: string | Buffer, deliveryId = randomUUID()): Promise<number> {
  return deliverRaw(url, secret, event, body, deliveryId);
}

async function deliverRaw(url: string, secret: string, event: string, body: string | Buffer, deliveryId: string): Promise<number> {
  const raw = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const res = await fetch(`${url}/api/github/webhooks`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": deliveryId,
      "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(raw).digest("hex")}`,
    },
    body: new Uint8Array(raw),
  });
  await res.text();
  return res.status;
}

/** Every example payload @octokit/webhooks-examples holds (github.com and each GHES version). */
function allExamples(): { event: string; payload: unknown; from: string }[] {
  const base = path.dirname(createRequire(import.meta.url).resolve("@octokit/webhooks-examples/package.json"));
  const out: { event: string; payload: unknown; from: string }[] = [];
  for (const dir of readdirSync(base)) {
    const index = path.join(base, dir, "index.json");
    if (!existsSync(index)) continue;
    for (const entry of JSON.parse(readFileSync(index, "utf8")) as { name: string; examples: unknown[] }[]) {
      for (const payload of entry.examples) out.push({ event: entry.name, payload, from: dir });
    }
  }
  return out;
}

type Mutation = { path: string; to: "delete" | null | unknown };

/** Sets or deletes one dotted path in a copy of `payload`; undefined when the path's parent is not there. */
function mutated(payload: Record<string, any>, m: Mutation): Record<string, any> | undefined {
  const copy = structuredClone(payload);
  const keys = m.path.split(".");
  let at: Record<string, any> = copy;
  for (const key of keys.slice(0, -1)) {
    at = at[key];
    if (typeof at !== "object" || at === null) return undefined;
  }
  const last = keys.at(-1)!;
  if (m.to === "delete") delete at[last];
  else at[last] = m.to;
  return copy;
}

const MISSING = ["delete", null] as const;
/** Variants that break a field of each kind; every one must be refused (or ignored) without a job. */
const broken = {
  id: (p: string): Mutation[] => [...MISSING, "7", 7.5, -1, 0, 2 ** 60, true, {}].map((to) => ({ path: p, to })),
  text: (p: string): Mutation[] => [...MISSING, 7, {}, []].map((to) => ({ path: p, to })),
  object: (p: string): Mutation[] => [...MISSING, "x", 7, []].map((to) => ({ path: p, to })),
  /** Absent is fine for the handler (it then ignores the delivery); a wrong type is not. */
  ignoredWhenAbsent: (p: string): Mutation[] => [...MISSING, "x", 7, []].map((to) => ({ path: p, to })),
  /** Absent is fine and still makes a job: only wrong types are broken. */
  wrongTypeOnly: (p: string, values: unknown[]): Mutation[] => values.map((to) => ({ path: p, to })),
};

const REPOSITORY = (p: string) => [
  ...broken.object(p),
  ...broken.id(`${p}.id`),
  ...broken.text(`${p}.name`),
  ...broken.text(`${p}.full_name`),
  ...broken.object(`${p}.owner`),
  ...broken.text(`${p}.owner.login`),
  ...broken.text(`${p}.clone_url`),
  { path: `${p}.clone_url`, to: "not a url" },
  ...broken.text(`${p}.default_branch`),
];
const ISSUE = (p: string) => [
  ...broken.object(p),
  ...broken.id(`${p}.number`),
  ...broken.text(`${p}.title`),
  ...broken.wrongTypeOnly(`${p}.body`, [7, true, {}]),
  { path: `${p}.comments`, to: "0" },
  { path: `${p}.comments`, to: "delete" },
  ...broken.wrongTypeOnly(`${p}.pull_request`, ["x", 7, true]),
];
const SENDER = (p: string) => [...broken.object(p), ...broken.text(`${p}.login`), ...broken.text(`${p}.type`)];
const INSTALLATION = (p: string) => [...broken.ignoredWhenAbsent(p), ...broken.id(`${p}.id`).filter((m) => m.to !== "delete" && m.to !== null)];

const LABEL_BREAKS: Mutation[] = [
  ...broken.ignoredWhenAbsent("label"),
  { path: "label.name", to: 7 },
  ...SENDER("sender"),
  ...INSTALLATION("installation"),
  ...ISSUE("issue"),
  ...REPOSITORY("repository"),
];
const COMMENT_BREAKS: Mutation[] = [
  ...broken.object("comment"),
  ...broken.id("comment.id"),
  ...broken.text("comment.body"),
  ...broken.wrongTypeOnly("comment.user", ["x", 7, true]),
  ...SENDER("sender"),
  ...INSTALLATION("installation"),
  ...ISSUE("issue"),
  ...REPOSITORY("repository"),
];
const CHECK_RUN_BREAKS: Mutation[] = [
  ...broken.object("check_run"),
  ...broken.text("check_run.name"),
  ...broken.ignoredWhenAbsent("check_run.external_id").filter((m) => m.to !== "x"),
  ...broken.ignoredWhenAbsent("check_run.app"),
  ...broken.id("check_run.app.id").filter((m) => m.to !== "delete" && m.to !== null),
  ...broken.ignoredWhenAbsent("requested_action"),
  { path: "requested_action.identifier", to: 7 },
  ...SENDER("sender"),
  ...INSTALLATION("installation"),
];

describe("the webhook endpoint, against a stranger and against malformed deliveries", () => {
  let child: ChildProcess;
  let url: string;
  let dataDir: string;
  let db: Kysely<Database>;
  const log: string[] = [];
  const secret = randomBytes(32).toString("hex");

  /** What waits on disk for a signature check (the part of a body past its first megabyte). */
  const spilled = () => (existsSync(path.join(dataDir, "incoming-webhooks")) ? readdirSync(path.join(dataDir, "incoming-webhooks")) : []);
  const counts = async () => ({ jobs: (await new JobStore(db).list()).length, requests: (await new RequestStore(db).list()).length });
  const alive = async () => child.exitCode === null && child.signalCode === null && (await fetch(`${url}/healthz`)).status === 200;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "aw-ingress-"));
    const { privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const env: Record<string, string> = {
      APP_ID: "1234",
      PRIVATE_KEY: privateKey,
      WEBHOOK_SECRET: secret,
      HOST: "127.0.0.1",
      PORT: String(await freePort()),
      DATA_DIR: dataDir,
      // Debug: anything the ingress or Probot would log about a body is in the captured log.
      LOG_LEVEL: "debug",
      // Short, so the slow-client tests are quick (production's default is 15 s), yet long enough
      // for 25 MB over loopback on a machine busy with other test suites.
      REQUEST_TIMEOUT_SECONDS: "8",
      // No metrics server: its fixed default port would collide with other tests running alongside.
      METRICS_PORT: "0",
    };
    child = spawn(process.execPath, compiledArgs(ENTRY), { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    child.stderr!.on("data", (d: Buffer) => log.push(d.toString("utf8")));
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the controller did not start within 60 s:\n${log.join("").slice(-3000)}`)), 60_000);
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString("utf8");
        const ready = /READY (\S+)/.exec(out);
        if (ready) {
          clearTimeout(timer);
          resolve(ready[1]!);
        }
      });
      child.once("exit", (code) => reject(new Error(`the controller exited (${code}):\n${log.join("").slice(-3000)}`)));
    });
    db = await openStore({ dataDir });
  }, 90_000);

  afterAll(async () => {
    await db?.destroy();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe("a 40 MB unsigned body", () => {
    const unsignedHeaders = {
      "content-type": "application/json",
      "x-github-event": "issues",
      "x-github-delivery": "stranger-1",
      "x-hub-signature-256": `sha256=${"0".repeat(64)}`,
    };
    const body = Buffer.alloc(40 * MB, `${CANARY} `);

    it("is refused with 413 before it is read, when it says how big it is", async () => {
      resetPeak(child.pid!);
      const before = memoryOf(child.pid!);
      const res = await post(url, { ...unsignedHeaders, "content-length": String(body.length) }, body);
      expect(res.status, res.text).toBe(413);
      expect((memoryOf(child.pid!).peakKb - before.rssKb) / 1024).toBeLessThan(30);
      expect(await alive()).toBe(true);
    });

    // Here 25 MB must be read before the count passes the cap. Past the first megabyte it waits on
    // disk; Node's copy of each chunk is garbage once hashed and written, freed every 4 MB (left to
    // V8 alone, the peak was that whole 25 MB of dead copies: 20–37 MB measured, over the bound).
    it("is refused with 413 once 25 MB have been counted, when it is sent chunked with no length", async () => {
      resetPeak(child.pid!);
      const before = memoryOf(child.pid!);
      // 1 MB at a time, as a stream: Node sends it with Transfer-Encoding: chunked.
      const chunks = Readable.from(
        (function* () {
          for (let i = 0; i < 40; i++) yield body.subarray(i * MB, (i + 1) * MB);
        })(),
      );
      const res = await post(url, unsignedHeaders, chunks);
      expect(res.status, res.text).toBe(413);
      expect(res.text).toContain("larger than");
      expect(spilled()).toEqual([]);
      expect((memoryOf(child.pid!).peakKb - before.rssKb) / 1024).toBeLessThan(30);
      expect(await alive()).toBe(true);
    });

    it("leaves nothing of its content in the log, and says what was refused and why", async () => {
      const written = log.join("");
      expect(written).not.toContain(CANARY);
      const refusals = written
        .split("\n")
        .filter((l) => l.includes("webhook delivery refused"))
        .map((l) => JSON.parse(l));
      expect(refusals.filter((r) => r.deliveryId === "stranger-1" && r.status === 413)).toHaveLength(2);
      for (const r of refusals) expect(r).toMatchObject({ event: "issues", reason: expect.any(String), bytes: expect.any(Number) });
    });

    it("is refused with 401 below the cap when its signature is wrong, and nothing of it is logged or kept", async () => {
      const small = Buffer.alloc(2 * MB, `${CANARY} `);
      const res = await post(url, { ...unsignedHeaders, "x-github-delivery": "stranger-2" }, small);
      expect(res.status).toBe(401);
      expect(log.join("")).not.toContain(CANARY);
      expect(spilled()).toEqual([]);
      expect(await counts()).toEqual({ jobs: 0, requests: 0 });
    });
  });

  it("a signed delivery sent as a form (GitHub's other content type) or with no Content-Type is refused with 415 and records nothing", async () => {
    const payload = JSON.stringify(labeledPayload({ cloneUrl: "https://example.invalid/o/r.git" }));
    for (const [contentType, body] of [
      ["application/x-www-form-urlencoded", `payload=${encodeURIComponent(payload)}`],
      ["text/plain", payload],
      [undefined, payload],
    ] as const) {
      const raw = Buffer.from(body, "utf8");
      const headers: Record<string, string> = {
        "x-github-event": "issues",
        "x-github-delivery": randomUUID(),
        "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(raw).digest("hex")}`,
      };
      if (contentType) headers["content-type"] = contentType;
      const res = await post(url, headers, raw);
      expect(res.status, String(contentType)).toBe(415);
      expect(JSON.parse(res.text)).toEqual({ error: "Content-Type must be application/json" });
    }
    expect(await counts()).toEqual({ jobs: 0, requests: 0 });
    expect(await alive()).toBe(true);
  });

  describe("a slow client", () => {
    /** Opens a raw connection, writes `head`, then one byte of body every 200 ms until the server closes it. */
    function trickle(head: string, drip: string): Promise<{ response: string; dripped: number }> {
      return new Promise((resolve, reject) => {
        const { port } = new URL(url);
        const socket = connect(Number(port), "127.0.0.1", () => socket.write(head));
        let response = "";
        let dripped = 0;
        const timer = setInterval(() => {
          if (!socket.destroyed && socket.writable) {
            socket.write(drip);
            dripped++;
          }
        }, 200);
        socket.on("data", (d: Buffer) => (response += d.toString("latin1")));
        socket.on("error", () => undefined);
        socket.on("close", () => {
          clearInterval(timer);
          resolve({ response, dripped });
        });
        setTimeout(() => {
          clearInterval(timer);
          socket.destroy();
          reject(new Error("the server kept a slow request open for 25 s"));
        }, 25_000).unref();
      });
    }

    it("sending its body a byte at a time is answered 408 and closed by the request timeout", async () => {
      const slow = trickle(
        [
          "POST /api/github/webhooks HTTP/1.1",
          "Host: 127.0.0.1",
          "Content-Type: application/json",
          "X-GitHub-Event: issues",
          "X-GitHub-Delivery: slow-1",
          `X-Hub-Signature-256: sha256=${"0".repeat(64)}`,
          "Content-Length: 100000",
          "",
          "",
        ].join("\r\n"),
        "a",
      );
      // Meanwhile the server answers everyone else.
      expect(await alive()).toBe(true);
      const { response, dripped } = await slow;
      expect(response).toMatch(/^HTTP\/1\.1 408 /);
      expect(dripped).toBeLessThan(100_000);
    });

    it("sending its headers a byte at a time is closed the same way", async () => {
      const { response } = await trickle("POST /api/github/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\n", "X");
      expect(response).toMatch(/^HTTP\/1\.1 408 /);
      expect(await alive()).toBe(true);
    });
  });

  describe("signed deliveries", () => {
    const statuses: { what: string; status: number }[] = [];
    const serverErrors = () => statuses.filter((s) => s.status >= 500);

    it("every @octokit/webhooks-examples payload is answered without a 5xx and makes no job", async () => {
      const examples = allExamples();
      expect(examples.length).toBeGreaterThan(300);
      for (const { event, payload, from } of examples) {
        statuses.push({
          what: `${from} ${event}.${(payload as { action?: string }).action ?? ""}`,
          status: await deliverSigned(url, secret, event, JSON.stringify(payload)),
        });
      }
      expect(serverErrors()).toEqual([]);
      // 200, or 202 for the GHES events @octokit/webhooks does not list (`user`, `cache_sync`…): nothing listens to them.
      expect(statuses.filter((s) => s.status !== 200 && !(s.status === 202 && /^ghes/.test(s.what)))).toEqual([]);
      expect(await counts()).toEqual({ jobs: 0, requests: 0 });
      expect(await alive()).toBe(true);
    }, 120_000);

    it("odd event names and bodies that are not a payload get a 4xx, never a 5xx", async () => {
      const labeled = JSON.stringify(labeledPayload({ cloneUrl: "https://example.invalid/o/r.git" }));
      const cases: [string, string | Buffer][] = [
        ...[
          "__proto__",
          "constructor",
          "hasOwnProperty",
          "toString",
          "valueOf",
          "issues.labeled",
          "ISSUES",
          "*",
          "error",
          "x".repeat(4000),
          "issues labeled",
        ].map((e): [string, string] => [e, labeled]),
        ...[
          "null",
          "[]",
          "5",
          '"issues"',
          "true",
          "{}",
          '{"action":"labeled"}',
          '{"action":{}}',
          '{"action":"labeled","__proto__":{"sender":1}}',
          "{",
          "",
          `${"[".repeat(100_000)}${"]".repeat(100_000)}`,
        ].map((b): [string, string] => ["issues", b]),
        ["issues", Buffer.from([0xff, 0xfe, 0x7b, 0x7d])],
        ["issue_comment", '{"action":"created"}'],
        ["check_run", '{"action":"requested_action","check_run":null}'],
        ["check_run", '{"action":"rerequested","check_run":{"name":"agent-work","app":{"id":"1234"}}}'],
      ];
      for (const [event, body] of cases) {
        const status = await deliverSigned(url, secret, event, body);
        statuses.push({ what: `${event.slice(0, 30)} ${String(body).slice(0, 30)}`, status });
        expect(status, `${event.slice(0, 30)}: ${String(body).slice(0, 40)}`).toBeGreaterThanOrEqual(200);
        expect(status, `${event.slice(0, 30)}: ${String(body).slice(0, 40)}`).toBeLessThan(500);
      }
      expect(serverErrors()).toEqual([]);
      expect(await counts()).toEqual({ jobs: 0, requests: 0 });
      expect(await alive()).toBe(true);
    }, 60_000);

    it("a payload with a field a handler reads removed, null or of the wrong type makes no job, where the whole one makes one", async () => {
      const cloneUrl = "https://example.invalid/o/r.git";
      // The whole deliveries first: each makes exactly one job or request, so each broken copy below would have too.
      const label = labeledPayload({ cloneUrl });
      expect(await deliverSigned(url, secret, "issues", JSON.stringify(label))).toBe(200);
      const comment = commentPayload({ body: "/agent run", cloneUrl, number: 2 });
      expect(await deliverSigned(url, secret, "issue_comment", JSON.stringify(comment))).toBe(200);
      expect(await counts()).toEqual({ jobs: 2, requests: 0 });
      const [job] = await new JobStore(db).list();
      const action = checkRunPayload({ action: "requested_action", jobId: job!.id, appId: 1234 });
      expect(await deliverSigned(url, secret, "check_run", JSON.stringify(action))).toBe(200);
      expect(await counts()).toEqual({ jobs: 2, requests: 1 });

      const variants: [string, Record<string, any>, Mutation][] = [
        ...LABEL_BREAKS.map((m): [string, Record<string, any>, Mutation] => ["issues", label, m]),
        ...COMMENT_BREAKS.map((m): [string, Record<string, any>, Mutation] => ["issue_comment", comment, m]),
        ...CHECK_RUN_BREAKS.map((m): [string, Record<string, any>, Mutation] => ["check_run", action, m]),
        // A re-run has no requested_action to break.
        ...CHECK_RUN_BREAKS.filter((m) => !m.path.startsWith("requested_action")).map((m): [string, Record<string, any>, Mutation] => [
          "check_run",
          checkRunPayload({ action: "rerequested", jobId: job!.id, appId: 1234 }),
          m,
        ]),
      ];
      expect(variants.length).toBeGreaterThan(150);
      const refused: string[] = [];
      const recorded: string[] = [];
      let before = await counts();
      for (const [event, whole, m] of variants) {
        const payload = mutated(whole, m);
        if (!payload) continue;
        const status = await deliverSigned(url, secret, event, JSON.stringify(payload));
        const what = `${event} ${m.path} → ${JSON.stringify(m.to)}`;
        statuses.push({ what, status });
        expect(status, what).toBeLessThan(500);
        if (status === 400) refused.push(what);
        const after = await counts();
        if (after.jobs !== before.jobs || after.requests !== before.requests) recorded.push(what);
        before = after;
      }
      expect(recorded).toEqual([]);
      expect(serverErrors()).toEqual([]);
      expect(await counts()).toEqual({ jobs: 2, requests: 1 });
      // A string where a number belongs is refused, not stored as text (the finding of issue 14).
      expect(refused).toContain('issues issue.number → "7"');
      expect(refused).toContain("check_run check_run → null");
      expect(await alive()).toBe(true);
    }, 120_000);

    it("a signed delivery of several megabytes is checked from disk and recorded, and its file removed", async () => {
      const big = { ...labeledPayload({ cloneUrl: "https://example.invalid/o/r.git", number: 3 }), padding: "p".repeat(3 * MB) };
      expect(await deliverSigned(url, secret, "issues", JSON.stringify(big))).toBe(200);
      expect(await counts()).toEqual({ jobs: 3, requests: 1 });
      expect(spilled()).toEqual([]);
    });
  });
});
