/**
 * footprint: controller RSS and event-loop delay with many active jobs on a fast fake backend
 * (each job's worker runs until released and reports a log line every second, as a real one does).
 *   npm run bench:footprint -- --jobs 500 --seconds 10
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { startHarness, FAKE_AGENT_CONFIG } from "../test/support/harness.js";
import type { Backend, Worker } from "../src/backends/types.js";
import { arg, ms, report, type BenchRow } from "./lib.js";

const jobs = arg("jobs", 500);
const seconds = arg("seconds", 8);

function fakeBackend() {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  let running = 0;
  const backend: Backend = {
    name: "local",
    capacity: async () => ({ max: 100_000, active: running }),
    create: async (job): Promise<Worker> => ({ id: `fake-${job.jobId}`, backend: "local", jobId: job.jobId, createdAt: Date.now(), meta: {} }),
    run: async (_worker, _input, onEvent, signal) => {
      running++;
      const tick = setInterval(() => onEvent({ type: "log", stream: "stdout", line: `working at ${new Date().toISOString()}`, at: Date.now() }), 1000);
      onEvent({ type: "step", step: "agent", status: "started", at: Date.now() });
      await Promise.race([gate, new Promise((r) => signal.addEventListener("abort", r))]);
      clearInterval(tick);
      running--;
      return { outcome: "no_changes", message: "done", computeSeconds: 1, aborted: signal.aborted };
    },
    destroy: async () => undefined,
    list: async () => [],
  };
  return { backend, release: () => release(), running: () => running };
}

export async function footprintBench(): Promise<BenchRow[]> {
  const fake = fakeBackend();
  const h = await startHarness({
    autoSchedule: true,
    repoConfigYaml: FAKE_AGENT_CONFIG("max_minutes: 55\n"),
    env: { MAX_CONCURRENT_JOBS: String(jobs), LOG_LEVEL: "info", SCHEDULER_INTERVAL_MS: "200", STATUS_UPDATE_INTERVAL_SECONDS: "30" },
    secondsPerMinute: 60,
    extraBackends: new Map([["local", fake.backend]]),
    // The fake GitHub has no rate limits; GitHub's pacing would only make the ramp-up slow.
    octokitDefaults: { throttle: { enabled: false } },
  });
  try {
    const baseline = process.memoryUsage().rss;
    for (let i = 0; i < jobs; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, jobs - i) }, (_, k) => h.deliverLabel({ number: i + k + 1, body: "work" })));
    }
    const started = Date.now();
    while (fake.running() < jobs && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 100));
    global.gc?.();
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    let peak = 0;
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      peak = Math.max(peak, process.memoryUsage().rss);
      await new Promise((r) => setTimeout(r, 250));
    }
    delay.disable();
    const p99 = delay.percentile(99) / 1e6;
    const rssMb = peak / 2 ** 20;
    fake.release();
    return [
      {
        bench: `footprint: ${fake.running() || jobs} active jobs`,
        figure: `RSS ${rssMb.toFixed(0)} MB`,
        reference: `${(baseline / 2 ** 20).toFixed(0)} MB before the jobs (process incl. the fake GitHub)`,
        goal: "≤ 150 MB",
        met: rssMb <= 150,
      },
      {
        bench: `footprint: event-loop delay over ${seconds} s`,
        figure: `p99 ${ms(p99)}`,
        reference: `mean ${ms(delay.mean / 1e6)}, max ${ms(delay.max / 1e6)}`,
        goal: "p99 ≤ 50 ms",
        met: p99 <= 50,
      },
    ];
  } finally {
    fake.release();
    await h.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) report(await footprintBench());
