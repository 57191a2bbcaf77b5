/**
 * The app the setup page registers sends its webhooks somewhere that reaches this controller:
 * PUBLIC_URL + /api/github/webhooks for a server, else a smee.io channel the setup page makes and
 * writes to .env, which the controller (src/main.ts, a real process here) then forwards from.
 * smee.io is the stand-in in test/support/fake-smee.ts; GitHub's side is a signed real payload.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sign } from "@octokit/webhooks-methods";
import { execa } from "execa";
import Sqlite from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { serveSetupPage } from "../../src/setup/serve-setup-page.js";
import { createSmeeChannel } from "../../src/webhook-proxy/create-smee-channel.js";
import { compiledArgs } from "../support/compiled-args.js";
import { startFakeSmee, type FakeSmee } from "../support/fake-smee.js";
import { freePort } from "../support/harness.js";
import { labeledPayload } from "../support/payloads.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = path.join(ROOT, "src", "main.ts");
const dirs: string[] = [];
const children: ChildProcess[] = [];
let smee: FakeSmee;

beforeAll(async () => {
  smee = await startFakeSmee();
});
afterEach(() => {
  // The whole process group goes: main.ts and anything it started.
  for (const c of children.splice(0)) {
    try {
      process.kill(-c.pid!, "SIGKILL");
    } catch {
      // already gone
    }
  }
});
afterAll(async () => {
  await smee?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A folder like a fresh clone's, as far as the setup page reads it: app.yml and package.json. */
function checkout(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-setup-"));
  dirs.push(dir);
  for (const f of ["app.yml", "package.json"]) copyFileSync(path.join(ROOT, f), path.join(dir, f));
  return dir;
}

/** `npm start`'s program as a real process; resolves with its output so far once `ready` matches it. */
function startMain(cwd: string, env: Record<string, string>, ready: RegExp): Promise<{ output: () => string }> {
  const child = spawn(process.execPath, compiledArgs(MAIN), {
    cwd,
    // No metrics server unless a test asks: the default port is shared by every test file running at once.
    env: { PATH: process.env.PATH!, HOME: cwd, LOG_FORMAT: "json", METRICS_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const seen = (d: Buffer) => {
      output += d.toString();
      if (ready.test(output)) resolve({ output: () => output });
    };
    child.stdout!.on("data", seen);
    child.stderr!.on("data", seen);
    child.on("exit", (code) => reject(new Error(`main.ts exited ${code} before it was ready:\n${output}`)));
  });
}

async function manifestAt(base: string): Promise<{ hook_attributes: { url: string }; redirect_url: string; default_events: string[] }> {
  const html = await (await fetch(`${base}/probot`)).text();
  const value = /id="manifest" value='([^']*)'/.exec(html)?.[1];
  if (!value) throw new Error(`no manifest on the setup page:\n${html.slice(0, 500)}`);
  return JSON.parse(value);
}

describe("the setup page's webhook URL", () => {
  it("is PUBLIC_URL + /api/github/webhooks on a server, whatever app.yml says", async () => {
    const port = await freePort();
    await startMain(
      checkout(),
      { PORT: String(port), HOST: "127.0.0.1", PUBLIC_URL: "https://agent-work.example.com/" },
      /open http:\/\/127\.0\.0\.1:\d+ to register/,
    );
    const manifest = await manifestAt(`http://127.0.0.1:${port}`);
    expect(manifest.hook_attributes).toEqual({ url: "https://agent-work.example.com/api/github/webhooks" });
    expect(manifest.redirect_url).toBe(`http://127.0.0.1:${port}/probot/setup`);
    expect(manifest.default_events).toEqual(["issues", "issue_comment", "check_run", "pull_request_review", "pull_request_review_comment"]);
  });

  it("is a new smee.io channel without PUBLIC_URL, written to .env for the controller to forward from", async () => {
    const dir = checkout();
    const saved = { cwd: process.cwd(), env: { ...process.env } };
    const said: string[] = [];
    process.chdir(dir);
    delete process.env.WEBHOOK_PROXY_URL;
    process.env.PORT = String(await freePort());
    process.env.HOST = "127.0.0.1";
    try {
      const { server, webhookUrl } = await serveSetupPage({
        config: {},
        env: process.env,
        createChannel: () => createSmeeChannel({ base: smee.url }),
        say: (l) => said.push(l),
      });
      try {
        expect(smee.made).toHaveLength(1);
        expect(webhookUrl).toBe(smee.made[0]);
        expect(readFileSync(path.join(dir, ".env"), "utf8")).toBe(`WEBHOOK_PROXY_URL=${smee.made[0]}`);
        expect((await manifestAt(`http://127.0.0.1:${server.port}`)).hook_attributes).toEqual({ url: smee.made[0] });
        expect(said.join("\n")).toContain(`its webhooks will go to ${smee.made[0]}`);
      } finally {
        await server.stop();
      }
    } finally {
      process.chdir(saved.cwd);
      process.env = saved.env;
    }
  });

  it("is healthy for the Docker image's HEALTHCHECK while it waits for someone to register the app", async () => {
    const dir = checkout();
    const saved = { cwd: process.cwd(), env: { ...process.env } };
    process.chdir(dir);
    process.env.PORT = String(await freePort());
    process.env.HOST = "127.0.0.1";
    // The Dockerfile's own probe, run as the image runs it.
    const probe = /^HEALTHCHECK .* CMD node -e "(.*)"$/m.exec(readFileSync(path.join(ROOT, "Dockerfile"), "utf8"))?.[1];
    expect(probe, "the Dockerfile has a HEALTHCHECK that runs node -e").toBeDefined();
    const healthy = async () => (await execa(process.execPath, ["-e", probe!], { reject: false, env: { PORT: process.env.PORT } })).exitCode;
    try {
      const { server } = await serveSetupPage({
        config: { publicUrl: "https://agent-work.example" },
        env: process.env,
        createChannel: () => Promise.reject(new Error("no smee here")),
        say: () => undefined,
      });
      try {
        expect(await healthy()).toBe(0);
      } finally {
        await server.stop();
      }
      // Nothing listening: unhealthy.
      expect(await healthy()).toBe(1);
    } finally {
      process.chdir(saved.cwd);
      process.env = saved.env;
    }
  });

  it("says so, loudly, when no webhook URL can be had (smee.io unreachable)", async () => {
    const dir = checkout();
    const saved = { cwd: process.cwd(), env: { ...process.env } };
    const said: string[] = [];
    process.chdir(dir);
    delete process.env.WEBHOOK_PROXY_URL;
    process.env.PORT = String(await freePort());
    process.env.HOST = "127.0.0.1";
    try {
      const unreachable = `http://127.0.0.1:${await freePort()}`;
      const { server, webhookUrl } = await serveSetupPage({
        config: {},
        env: process.env,
        createChannel: () => createSmeeChannel({ base: unreachable }),
        say: (l) => said.push(l),
      });
      await server.stop();
      expect(webhookUrl).toBeUndefined();
      expect(said.join("\n")).toMatch(/WARNING: no webhook URL that reaches this controller[\s\S]*Set PUBLIC_URL .* or WEBHOOK_PROXY_URL/);
    } finally {
      process.chdir(saved.cwd);
      process.env = saved.env;
    }
  });
});

describe("a controller with WEBHOOK_PROXY_URL", () => {
  it("gets GitHub's deliveries through the smee.io channel, signature checked, and again after the stream drops", { timeout: 60_000 }, async () => {
    const dir = checkout();
    const channel = `${smee.url}/${randomBytes(6).toString("hex")}`;
    const secret = randomBytes(32).toString("hex");
    const { privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const dataDir = path.join(dir, "data");
    const main = await startMain(
      dir,
      {
        APP_ID: "1234",
        PRIVATE_KEY: privateKey,
        WEBHOOK_SECRET: secret,
        WEBHOOK_PROXY_URL: channel,
        PORT: String(await freePort()),
        HOST: "127.0.0.1",
        DATA_DIR: dataDir,
        LOCAL_SANDBOX: "none",
        SCHEDULER_INTERVAL_MS: "600000",
      },
      /agent-work controller started/,
    );
    await smee.listening(channel);

    async function viaSmee(signWith: string): Promise<string> {
      const id = randomUUID();
      const payload = labeledPayload({ cloneUrl: "http://127.0.0.1:9/none.git" });
      const body = JSON.stringify(payload);
      smee.send(
        channel,
        {
          "Content-Type": "application/json",
          "X-GitHub-Event": "issues",
          "X-GitHub-Delivery": id,
          "X-Hub-Signature-256": await sign(signWith, body),
          "User-Agent": "GitHub-Hookshot/abc",
        },
        payload,
      );
      return id;
    }
    const forwarded = async (id: string) => {
      for (;;) {
        const line = main
          .output()
          .split("\n")
          .find((l) => l.includes(id) && l.includes("webhook forwarded"));
        if (line) return JSON.parse(line) as { status: number };
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const jobFor = (id: string) => {
      const db = new Sqlite(path.join(dataDir, "agent-work.sqlite"), { readonly: true });
      try {
        return db.prepare("select state from jobs where delivery_id = ?").get(id);
      } finally {
        db.close();
      }
    };

    const good = await viaSmee(secret);
    expect((await forwarded(good)).status).toBe(200);
    expect(jobFor(good)).toBeDefined();

    const forged = await viaSmee("not-the-secret");
    // 401: the signature does not match (src/ingress/webhook-ingress.ts).
    expect((await forwarded(forged)).status).toBe(401);
    expect(jobFor(forged)).toBeUndefined();

    // smee.io ends streams now and then: the controller reconnects and keeps forwarding.
    smee.drop();
    await smee.listening(channel);
    const after = await viaSmee(secret);
    expect((await forwarded(after)).status).toBe(200);
    expect(jobFor(after)).toBeDefined();
    expect(main.output()).not.toContain(channel);
  });
});
