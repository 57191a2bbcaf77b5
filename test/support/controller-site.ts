/**
 * Runs test/support/crash-controller.ts as a real process and reads what it leaves behind: the
 * SQLite file (read-only, beside the running controller), the fake GitHub's calls and state, the
 * worker folders, the processes still alive. Used by the crash-matrix and SIGTERM tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Sqlite from "better-sqlite3";
import type { FakeGitHubState, RecordedCall } from "./fake-github.js";
import { deliver, labeledPayload } from "./payloads.js";
import { FIXTURES, freePort } from "./harness.js";
import type { CrashPoint } from "./crash-controller.js";

const ENTRY = fileURLToPath(new URL("./crash-controller.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface ControllerSite {
  dataDir: string;
  githubDir: string;
  workerToken: string;
  cloneUrl: string;
  env: Record<string, string>;
  webhookSecret: string;
  /** Every process this site started, with how it ended. */
  runs: { exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; child: ChildProcess; url: string }[];
  logFile: string;
}

/** A data folder and a fake-GitHub folder for one controller that may be started several times. */
export function controllerSite(options: { workerToken: string; cloneUrl: string; baseSha: string; bareRepo: string; repoConfigYaml: string; env?: Record<string, string> }): ControllerSite {
  const dataDir = mkdtempSync(path.join(tmpdir(), "agent-work-crash-data-"));
  const githubDir = mkdtempSync(path.join(tmpdir(), "agent-work-crash-github-"));
  const webhookSecret = randomBytes(32).toString("hex");
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  // Nothing of the test runner's environment: only what a controller would be given.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    LANG: process.env.LANG ?? "C.UTF-8",
    APP_ID: "1234",
    PRIVATE_KEY: privateKey,
    WEBHOOK_SECRET: webhookSecret,
    HOST: "127.0.0.1",
    // Off: these controllers are started and killed many times side by side, and nothing scrapes them.
    METRICS_PORT: "0",
    DATA_DIR: dataDir,
    LOG_LEVEL: "info",
    SANDBOX_RO_BINDS: FIXTURES.replace(/\/$/, ""),
    STATUS_UPDATE_INTERVAL_SECONDS: "1",
    LEASE_SECONDS: "5",
    SCHEDULER_INTERVAL_MS: "200",
    AGENT_WORK_TEST_GITHUB_DIR: githubDir,
    AGENT_WORK_TEST_WORKER_TOKEN: options.workerToken,
    AGENT_WORK_TEST_BARE_REPO: options.bareRepo,
    AGENT_WORK_TEST_BASE_SHA: options.baseSha,
    AGENT_WORK_TEST_REPO_CONFIG: options.repoConfigYaml,
    ...options.env,
  };
  return { dataDir, githubDir, workerToken: options.workerToken, cloneUrl: options.cloneUrl, env, webhookSecret, runs: [], logFile: path.join(githubDir, "controller.log") };
}

/**
 * Starts the controller process; resolves once it serves webhooks. Tests running side by side may
 * be handed the same free port: a start that finds it taken tries another.
 */
export async function startControllerProcess(site: ControllerSite, crashAt?: CrashPoint): Promise<ControllerSite["runs"][number]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(site, crashAt);
    } catch (err) {
      if (attempt >= 3 || !/already in use/.test(String(err))) throw err;
    }
  }
}

async function startOnce(site: ControllerSite, crashAt?: CrashPoint): Promise<ControllerSite["runs"][number]> {
  const port = await freePort();
  const log = openSync(site.logFile, "a");
  const child = spawn(process.execPath, ["--import", "tsx", ENTRY], {
    cwd: ROOT,
    env: { ...site.env, PORT: String(port), ...(crashAt ? { AGENT_WORK_TEST_CRASH_AT: crashAt } : {}) },
    stdio: ["ignore", log, "pipe"],
  });
  closeSync(log);
  let stderr = "";
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /crash-controller: ready (\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void exit.then(({ code, signal }) => reject(new Error(`the controller exited (${signal ?? code}) before it was ready: ${stderr.slice(-2000)}`)));
  });
  const run = { exit, child, url };
  site.runs.push(run);
  return run;
}

export function sendLabel(site: ControllerSite, url: string, body: string) {
  return deliver(url, site.webhookSecret, "issues", labeledPayload({ cloneUrl: site.cloneUrl, body }));
}

export interface JobRow {
  id: string;
  state: string;
  attempts: number;
  lease_owner: string | null;
  pr_number: number | null;
  branch: string | null;
  worker_json: string | null;
  worker_token_sealed: string | null;
  message: string | null;
  steps_json: string;
}

/** The jobs as the controller's SQLite file has them now (read-only, WAL lets it run beside the controller). */
export function readJobs(site: ControllerSite): JobRow[] {
  const file = path.join(site.dataDir, "agent-work.sqlite");
  if (!existsSync(file)) return [];
  const db = new Sqlite(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma("busy_timeout = 5000");
    return db.prepare("select id, state, attempts, lease_owner, pr_number, branch, worker_json, worker_token_sealed, message, steps_json from jobs order by created_at").all() as JobRow[];
  } catch (err) {
    // The schema may not be there yet on a first start.
    if (/no such table/.test(String(err))) return [];
    throw err;
  } finally {
    db.close();
  }
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function exitOf(run: ControllerSite["runs"][number], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the controller did not exit within ${timeoutMs} ms`)), timeoutMs)));
  try {
    return await Promise.race([run.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function githubCalls(site: ControllerSite): (RecordedCall & { pid: number })[] {
  const file = path.join(site.githubDir, "calls.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

export function githubState(site: ControllerSite): FakeGitHubState {
  return JSON.parse(readFileSync(path.join(site.githubDir, "state.json"), "utf8"));
}

/** Live (not zombie) processes whose working directory or command line is inside `dir`. */
export function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (/^\d+ \(.*\) [ZX]/s.test(stat)) continue;
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cwd.startsWith(dir) || cmdline.includes(dir)) found.push(`${pid} ${cmdline.slice(0, 120)}`);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Files under `dir` that contain `needle` anywhere in their bytes (the SQLite file, its WAL, logs, worker folders). */
export function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const bytes = Buffer.from(needle);
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && statSync(p).size > 0 && readFileSync(p).includes(bytes)) hits.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return hits;
}

export function removeSite(site: ControllerSite): void {
  for (const run of site.runs) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
  rmSync(site.dataDir, { recursive: true, force: true });
  rmSync(site.githubDir, { recursive: true, force: true });
}
