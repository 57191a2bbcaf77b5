// The controller as its own process for bench/footprint.ts: the built app (dist/) on its
// configuration from the environment, with a fast fake backend in place of `local` whose workers
// run until the process ends and log a line a second each. On SIGUSR2 it prints one line of
// figures (event-loop delay since the last line, running workers) and resets the histogram.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Writable } from "node:stream";
import { loadControllerConfig } from "../dist/config/env.js";
import { startController } from "../dist/controller.js";

let running = 0;
const backend = {
  name: "local",
  capacity: async () => ({ max: 100000, active: running }),
  create: async (job) => ({ id: `fake-${job.jobId}`, backend: "local", jobId: job.jobId, createdAt: Date.now(), meta: {} }),
  run: (_worker, _input, onEvent, signal) =>
    new Promise((resolve) => {
      running++;
      onEvent({ type: "step", step: "agent", status: "started", at: Date.now() });
      const tick = setInterval(() => onEvent({ type: "log", stream: "stdout", line: `working at ${new Date().toISOString()}`, at: Date.now() }), 1000);
      signal.addEventListener("abort", () => {
        clearInterval(tick);
        running--;
        resolve({ outcome: "error", message: "stopped", computeSeconds: 1, aborted: true });
      });
    }),
  destroy: async () => undefined,
  list: async () => [],
};

const loaded = loadControllerConfig(process.env);
if (!loaded.ok) {
  console.error(loaded.errors.join("\n"));
  process.exit(2);
}
const logs = new Writable({ write: (_c, _e, cb) => cb() });
const controller = await startController({
  config: loaded.config,
  logDestination: logs,
  extraBackends: new Map([["local", backend]]),
  // The fake GitHub has no rate limits; GitHub's pacing would only stretch the ramp-up.
  octokitDefaults: { throttle: { enabled: false } },
});
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
process.on("SIGUSR2", () => {
  const m = process.memoryUsage();
  const mb = (v) => Math.round(v / 2 ** 20);
  console.log(`FIGURES ${JSON.stringify({ running, p99: delay.percentile(99) / 1e6, mean: delay.mean / 1e6, max: delay.max / 1e6, heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) })}`);
  delay.reset();
});
process.on("SIGTERM", () => controller.close({ abort: true }).then(() => process.exit(0)));
console.log(`READY ${controller.url}`);
