/**
 * The processes a benchmark measures and drives, each on its own: the controller as users run it
 * (bench/controller-child.mjs, from dist/), bare Probot (bench/bare-probot-child.mjs), and the load
 * client (bench/load-client.mjs, autocannon). CPU time is read from /proc, so both targets are
 * measured the same way and the reading costs them nothing.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface, type Interface } from "node:readline";
import { promisify } from "node:util";
import { freePort, tempDataDir, type appCredentials } from "./support.js";

const run = promisify(execFile);
const CLOCK_TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** User + system CPU time of a process so far, in ms (Linux /proc). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * The same, split by thread (/proc/<pid>/task): the main thread (its id is the pid), the webhook
 * thread and the WAL checkpointer (they name themselves: src/ingress/name-this-thread.ts), and the
 * rest — V8's garbage-collection and compiler helpers, libuv's pool. A thread that ended meanwhile
 * is missing from a later reading, so compare readings of a process whose threads live on.
 */
export interface ThreadCpu {
  main: number;
  webhooks: number;
  checkpoints: number;
  other: number;
}
export function threadCpuMs(pid: number): ThreadCpu {
  const out: ThreadCpu = { main: 0, webhooks: 0, checkpoints: 0, other: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
    if (tid === String(pid)) out.main += ms;
    else if (name === "aw-webhooks") out.webhooks += ms;
    else if (name === "aw-checkpoints") out.checkpoints += ms;
    else out.other += ms;
  }
  return out;
}

/** `after` − `before`, thread by thread. */
export function threadCpuSince(before: ThreadCpu, after: ThreadCpu): ThreadCpu {
  return {
    main: after.main - before.main,
    webhooks: after.webhooks - before.webhooks,
    checkpoints: after.checkpoints - before.checkpoints,
    other: after.other - before.other,
  };
}

/** "main 25.1, webhooks 0.6, checkpoints 0.1, V8 and libuv helpers 4.2 ms a job" */
export function threadCpuText(cpu: ThreadCpu, jobs: number): string {
  const a = (ms: number) => (ms / jobs).toFixed(1);
  return `main thread ${a(cpu.main)}, webhook thread ${a(cpu.webhooks)}, checkpoints ${a(cpu.checkpoints)}, V8 and libuv helper threads ${a(cpu.other)} ms a job`;
}

export interface Target {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Only for the controller: one line of figures (jobs by state, running workers, event loop). */
  figures(): Promise<ControllerFigures>;
  /** Stops the process; resolves with where its CPU profile went, when one was asked for. */
  stop(): Promise<string | undefined>;
}

export interface ControllerFigures {
  running: number;
  p99: number;
  mean: number;
  max: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  cpuMs: number;
  states: Record<string, number>;
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out", "rejected"]);

/** Jobs not yet in a final state. */
export function unfinished(states: Record<string, number>): number {
  return Object.entries(states).reduce((n, [s, c]) => (TERMINAL.has(s) ? n : n + c), 0);
}

/** Jobs that ended with their pull request. */
export function succeeded(states: Record<string, number>): number {
  return states.succeeded ?? 0;
}

export function total(states: Record<string, number>): number {
  return Object.values(states).reduce((a, b) => a + b, 0);
}

let built = false;
/** The controller runs from dist/, as `npm start` runs it. */
export function buildOnce(): void {
  if (built) return;
  execFileSync("npm", ["run", "build", "--silent"], { stdio: "ignore" });
  built = true;
}

function waitFor(lines: Interface, prefix: string): Promise<string> {
  return new Promise((resolve) => {
    const on = (l: string) => {
      if (!l.startsWith(prefix)) return;
      lines.off("line", on);
      resolve(l.slice(prefix.length + 1));
    };
    lines.on("line", on);
  });
}

export interface StartOptions {
  creds: ReturnType<typeof appCredentials>;
  /** host:port of bench/fake-github-server.ts (controller only). */
  githubHost?: string;
  env?: Record<string, string>;
  /** Node flags; `npm start`'s by default. */
  nodeFlags?: string[];
  /** Write a V8 CPU profile of the whole run into a new temp folder. */
  cpuProfile?: boolean;
}

const START_FLAGS = ["--max-semi-space-size=2", "--max-old-space-size=160"];

async function startChild(script: string, env: Record<string, string>, options: StartOptions): Promise<Target> {
  // The child profiles itself from READY to SIGTERM, so start-up is left out (controller only).
  const profile = options.cpuProfile ? path.join(mkdtempSync(path.join(tmpdir(), "agent-work-prof-")), "controller.cpuprofile") : undefined;
  // BENCH_NODE_FLAGS (space-separated) tries other Node flags on the controller than npm start's.
  const flags = options.nodeFlags ?? (process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(" ") : START_FLAGS);
  const child = spawn(process.execPath, [...flags, script], {
    env: { PATH: process.env.PATH ?? "", ...env, ...(profile ? { BENCH_PROFILE: profile } : {}) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await Promise.race([waitFor(lines, "READY"), exited.then(() => Promise.reject(new Error(`${script} exited before it was ready`)))]);
  return {
    url,
    pid: child.pid!,
    child,
    async figures() {
      const line = waitFor(lines, "FIGURES");
      child.kill("SIGUSR2");
      return JSON.parse(await line) as ControllerFigures;
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
      return profile && existsSync(profile) ? profile : undefined;
    },
  };
}

/**
 * Another checkout's build to run instead of this tree's: `build` when given, else
 * BENCH_CONTROLLER_BUILD (for the benchmarks without a --compare). Built there, not here.
 */
function otherBuild(build: string | undefined): string | undefined {
  const checkout = build ?? process.env.BENCH_CONTROLLER_BUILD;
  if (checkout === undefined) return undefined;
  const dist = path.resolve(checkout, "dist");
  if (!existsSync(path.join(dist, "controller.js"))) throw new Error(`${dist}/controller.js is missing: run npm run build in ${checkout} first`);
  return dist;
}

/**
 * The controller as users run it, with workers that cost it nothing (see controller-child.mjs).
 * With `build` (a checkout, e.g. a worktree of an older commit) that checkout's dist/ runs instead,
 * driven by this tree's child script under the same load and the same measurements: the way to
 * compare before and after on one machine in one sitting. (An older checkout's own child script
 * may lack what the benchmarks ask of it: 4e915ac's has no instant worker and no jobs by state.)
 */
export async function startController(options: StartOptions & { worker: "instant" | "busy"; build?: string }): Promise<Target> {
  const dist = otherBuild(options.build);
  if (!dist) buildOnce();
  const { creds } = options;
  return startChild(
    "bench/controller-child.mjs",
    {
      ...(dist ? { BENCH_DIST: dist } : {}),
      APP_ID: String(creds.appId),
      PRIVATE_KEY: creds.privateKey,
      WEBHOOK_SECRET: creds.secret,
      GHE_HOST: options.githubHost!,
      GHE_PROTOCOL: "http",
      HOST: "127.0.0.1",
      PORT: String(await freePort()),
      METRICS_PORT: "0",
      DATA_DIR: tempDataDir(),
      LOG_LEVEL: "info",
      BENCH_WORKER: options.worker,
      // Every job reserves its ceiling ($1 by default) until it is billed, so the controller's
      // hourly budget ($5) would refuse all but a handful of a burst's jobs (refused jobs cost
      // less and would flatter the CPU a job). Like GitHub's content budget, it is lifted here.
      BUDGET_GLOBAL_HOURLY_USD: "1000000",
      BUDGET_REPO_MONTHLY_USD: "1000000",
      ...options.env,
    },
    options,
  );
}

export async function startBareProbot(options: StartOptions): Promise<Target> {
  const { creds } = options;
  const port = await freePort();
  const target = await startChild(
    "bench/bare-probot-child.mjs",
    { APP_ID: String(creds.appId), PRIVATE_KEY: creds.privateKey, WEBHOOK_SECRET: creds.secret, PORT: String(port) },
    options,
  );
  return { ...target, figures: () => Promise.reject(new Error("bare Probot has no figures")) };
}

export interface LoadOptions {
  url: string;
  secret: string;
  firstIssue: number;
  connections: number;
  rate?: number;
  seconds?: number;
  amount?: number;
}

export interface LoadResult {
  /** ms per answered (2xx) delivery. */
  latencies: number[];
  statuses: Record<string, number>;
  answered: number;
  errors: number;
  timeouts: number;
  sent: number;
  seconds: number;
}

/** Runs the load client (autocannon) in its own process against a target. */
export async function load(options: LoadOptions): Promise<LoadResult> {
  const { stdout } = await run(process.execPath, ["bench/load-client.mjs", JSON.stringify({ ...options, url: `${options.url}/api/github/webhooks` })], {
    maxBuffer: 256 * 1024 * 1024,
    env: process.env,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as LoadResult;
}

/** Polls the controller until every job has reached a final state (or `timeoutMs` passes). */
export async function settle(target: Target, timeoutMs: number): Promise<{ figures: ControllerFigures; at: number }> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const figures = await target.figures();
    if (unfinished(figures.states) === 0 || performance.now() > deadline) return { figures, at: performance.now() };
    await new Promise((r) => setTimeout(r, 1000));
  }
}
