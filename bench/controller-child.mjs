// The controller as its own process for the benchmarks: the built app (dist/, as `npm start` runs
// it) on its configuration from the environment, scheduler, intake and reaper on, with a fake
// backend in place of `local` whose workers cost this process nothing but the events they send:
//   BENCH_WORKER=busy     (bench/footprint.ts) runs until the process ends, a log line a second;
//   BENCH_WORKER=instant  (bench/ingest.ts, bench/burst.ts) goes through clone, agent, commit and
//                         push at once and reports a pushed branch, so each job runs from intake
//                         to its pull request and final report.
// On SIGUSR2 it prints one line of figures (event-loop delay since the last line, running workers,
// this process's CPU time, jobs by state) and resets the histogram. With BENCH_PROFILE=<file> it
// records a V8 CPU profile from READY (start-up left out) to SIGTERM and writes it there.
// BENCH_DIST=<checkout>/dist runs another checkout's build (an older commit, built there) in place
// of this tree's dist/, driven by this script, so two builds are measured the same way.
import { existsSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { createRequire } from "node:module";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Writable } from "node:stream";
import { pathToFileURL } from "node:url";

const dist = process.env.BENCH_DIST ? pathToFileURL(`${process.env.BENCH_DIST}/`) : new URL("../dist/", import.meta.url);
const { loadControllerConfig } = await import(new URL("config/env.js", dist).href);
const { startController } = await import(new URL("controller.js", dist).href);

const mode = process.env.BENCH_WORKER ?? "busy";
let running = 0;

function busy(_worker, _input, onEvent, signal) {
  return new Promise((resolve) => {
    running++;
    onEvent({ type: "step", step: "agent", status: "started", at: Date.now() });
    const tick = setInterval(() => onEvent({ type: "log", stream: "stdout", line: `working at ${new Date().toISOString()}`, at: Date.now() }), 1000);
    signal.addEventListener("abort", () => {
      clearInterval(tick);
      running--;
      resolve({ outcome: "error", message: "stopped", computeSeconds: 1, aborted: true });
    });
  });
}

async function instant(_worker, input, onEvent) {
  for (const step of ["clone", "agent", "commit", "push"]) {
    onEvent({ type: "step", step, status: "started", at: Date.now() });
    if (step === "agent") onEvent({ type: "log", stream: "stdout", line: "edited README.md", at: Date.now() });
    onEvent({ type: "step", step, status: "finished", at: Date.now() });
  }
  return {
    outcome: "pushed",
    branch: input.branch,
    headSha: "c".repeat(40),
    baseSha: "a".repeat(40),
    filesChanged: 1,
    agentExitCode: 0,
    message: "pushed",
    computeSeconds: 0.01,
    aborted: false,
  };
}

const backend = {
  name: "local",
  capacity: async () => ({ max: 100000, active: running }),
  create: async (job) => ({ id: `fake-${job.jobId}`, backend: "local", jobId: job.jobId, createdAt: Date.now(), meta: {} }),
  run: mode === "instant" ? instant : busy,
  destroy: async () => undefined,
  list: async () => [],
};

/**
 * The throttling plugin stays on, as users run it, but without the ~80 a minute budget for
 * content-creating calls: at that pace alone (github.com's secondary limit) 1,000 status comments
 * take 12.5 minutes, and the fake GitHub has no such limit to respect. Every other limiter stays
 * as the build has it.
 */
async function withoutContentBudget() {
  const limiters = new URL("github/request-limiters.js", dist);
  if (existsSync(limiters)) {
    // Builds with these limiters (79bbd16 on) merge this into their own throttle options.
    const { perMinuteBudget } = await import(limiters.href);
    return { notifications: perMinuteBudget(Number.MAX_SAFE_INTEGER) };
  }
  // Builds before 49bd9c0 (4e915ac, the one before issue 17's work) replace their throttle
  // options with this object. Given only `notifications`, the plugin filled in its own groups for
  // the rest, which space writes 1 s apart: a burst's jobs then took hours and looked idle. So
  // these are that build's own groups (its src/github/octokit-class.ts), from the Bottleneck it
  // loads, with only the notifications reservoir left out. Its rate-limit handlers are not
  // repeated: the fake GitHub never limits, and Probot's defaults fill them in.
  const Bottleneck = createRequire(dist)("bottleneck");
  return {
    global: new Bottleneck.Group({ maxConcurrent: 40 }),
    write: new Bottleneck.Group({ maxConcurrent: 10 }),
    notifications: new Bottleneck.Group({ maxConcurrent: 4 }),
  };
}

const loaded = loadControllerConfig(process.env);
if (!loaded.ok) {
  console.error(loaded.errors.join("\n"));
  process.exit(2);
}
// Log lines are formatted and redacted as usual (the cost is real), then dropped.
const logs = new Writable({ write: (_c, _e, cb) => cb() });
const controller = await startController({
  config: loaded.config,
  logDestination: logs,
  extraBackends: new Map([["local", backend]]),
  octokitDefaults: { throttle: await withoutContentBudget() },
});
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
/** A signal handler that is async: its failure ends the child with the error instead of going unheard. */
const onSignal = (handler) => () => {
  handler().catch((err) => {
    console.error(err);
    process.exit(1);
  });
};
process.on(
  "SIGUSR2",
  onSignal(async () => {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage();
    const mb = (v) => Math.round(v / 2 ** 20);
    const states = await controller.store.countByState();
    console.log(
      `FIGURES ${JSON.stringify({ running, p99: delay.percentile(99) / 1e6, mean: delay.mean / 1e6, max: delay.max / 1e6, heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers), cpuMs: (cpu.user + cpu.system) / 1000, states })}`,
    );
    delay.reset();
  }),
);
const profiler = process.env.BENCH_PROFILE ? new Session() : undefined;
const post = (method, params) => new Promise((resolve, reject) => profiler.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
if (profiler) {
  profiler.connect();
  await post("Profiler.enable");
  await post("Profiler.start");
}
process.on(
  "SIGTERM",
  onSignal(async () => {
    if (profiler) writeFileSync(process.env.BENCH_PROFILE, JSON.stringify((await post("Profiler.stop")).profile));
    await controller.close({ abort: true });
    process.exit(0);
  }),
);
console.log(`READY ${controller.url}`);
