/**
 * Runs test/support/crash-controller.ts as a real process (compiled, test/support/compiled-args.ts)
 * and reads what it leaves behind: the SQLite file (read-only, beside the running controller), the
 * fake GitHub's calls and state, the worker folders, the processes still alive. Used by the
 * crash-matrix and SIGTERM tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Sqlite from "better-sqlite3";
import type { FakeGitHubState, RecordedCall } from "./fake-github.js";
import { commentPayload, deliver, labeledPayload } from "./payloads.js";
import { compiledArgs } from "./compiled-args.js";
import { appPrivateKey, FIXTURES, freePort } from "./harness.js";
import type { CrashPoint } from "./crash-controller.js";

const ENTRY = fileURLToPath(new URL("./crash-controller.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = path.join(ROOT, "src", "cli", "main.ts");

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
export function controllerSite(options: {
  workerToken: string;
  cloneUrl: string;
  baseSha: string;
  bareRepo: string;
  repoConfigYaml: string;
  env?: Record<string, string>;
}): ControllerSite {
  const dataDir = mkdtempSync(path.join(tmpdir(), "agent-work-crash-data-"));
  const githubDir = mkdtempSync(path.join(tmpdir(), "agent-work-crash-github-"));
  const webhookSecret = randomBytes(32).toString("hex");
  // Nothing of the test runner's environment: only what a controller would be given.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    LANG: process.env.LANG ?? "C.UTF-8",
    APP_ID: "1234",
    PRIVATE_KEY: appPrivateKey(),
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
  return {
    dataDir,
    githubDir,
    workerToken: options.workerToken,
    cloneUrl: options.cloneUrl,
    env,
    webhookSecret,
    runs: [],
    logFile: path.join(githubDir, "controller.log"),
  };
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
  const child = spawn(process.execPath, compiledArgs(ENTRY), {
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

export function sendComment(site: ControllerSite, url: string, body: string) {
  return deliver(url, site.webhookSecret, "issue_comment", commentPayload({ cloneUrl: site.cloneUrl, body }));
}

/** Runs the ops CLI (`agent-work …`) as its own process on the site's configuration. */
export function runCliProcess(site: ControllerSite, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...compiledArgs(CLI), ...args], { cwd: ROOT, env: site.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs SQL against the site's SQLite file while no controller is running (a test moving time on). */
export function writeSite(site: ControllerSite, sql: string, ...params: unknown[]): void {
  const db = new Sqlite(path.join(site.dataDir, "agent-work.sqlite"), { fileMustExist: true });
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

export interface OutboxRow {
  key: string;
  state: string;
  tries: number;
}

export function readOutbox(site: ControllerSite): OutboxRow[] {
  return readRows(site, "select key, state, tries from outbox order by created_at, key") as OutboxRow[];
}

export interface LedgerView {
  entry: { state: string; billed_seconds: number | null; total_usd: number | null } | undefined;
  bills: { worker_id: string; started_at: number; ended_at: number; billed_seconds: number }[];
  /** How many times the job entered `provisioning`: each such start made (at most) one worker. */
  starts: number;
}

/** A job's ledger row, its worker bills, and how many starts it had. */
export function readLedger(site: ControllerSite, jobId: string): LedgerView {
  const [entry] = readRows(site, `select state, billed_seconds, total_usd from ledger where job_id = '${jobId}'`) as LedgerView["entry"][];
  const bills = readRows(
    site,
    `select worker_id, started_at, ended_at, billed_seconds from ledger_workers where job_id = '${jobId}' order by started_at`,
  ) as LedgerView["bills"];
  const events = readRows(site, `select data_json from job_events where job_id = '${jobId}' and kind = 'state'`) as { data_json: string }[];
  const starts = events.filter((e) => JSON.parse(e.data_json).to === "provisioning").length;
  return { entry, bills, starts };
}

/** A job's event log (kind and data), oldest first. */
export function readEvents(site: ControllerSite, jobId: string): { kind: string; data: any }[] {
  return (readRows(site, `select kind, data_json from job_events where job_id = '${jobId}' order by id`) as { kind: string; data_json: string | null }[]).map(
    (e) => ({
      kind: e.kind,
      data: e.data_json ? JSON.parse(e.data_json) : null,
    }),
  );
}

export function readRequests(site: ControllerSite): { id: string; state: string; outcome: string | null }[] {
  return readRows(site, "select id, state, outcome from requests order by created_at") as { id: string; state: string; outcome: string | null }[];
}

function readRows(site: ControllerSite, query: string): unknown[] {
  const file = path.join(site.dataDir, "agent-work.sqlite");
  if (!existsSync(file)) return [];
  const db = new Sqlite(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma("busy_timeout = 5000");
    return db.prepare(query).all();
  } catch (err) {
    if (/no such table/.test(String(err))) return [];
    throw err;
  } finally {
    db.close();
  }
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
    return db
      .prepare(
        "select id, state, attempts, lease_owner, pr_number, branch, worker_json, worker_token_sealed, message, steps_json from jobs order by created_at",
      )
      .all() as JobRow[];
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
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`the controller did not exit within ${timeoutMs} ms`)), timeoutMs)),
  );
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
