/**
 * ingest: signed `issues.labeled` deliveries at a fixed rate and then flat out, against this app
 * and against a bare Probot app with a no-op handler, in one run. Every delivery must become
 * exactly one job.
 *   npm run bench:ingest -- --rate 100 --seconds 5 --flat 5 --concurrency 16
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import pino from "pino";
import { Probot, Server } from "probot";
import { loadControllerConfig } from "../src/config/env.js";
import { startController } from "../src/controller.js";
import { appCredentials, freePort, nullSink, tempDataDir } from "./support.js";
import { arg, ms, percentile, report, type BenchRow } from "./lib.js";

const run = promisify(execFile);
const rate = arg("rate", 100);
const seconds = arg("seconds", 3);
const flat = arg("flat", 3);
const concurrency = arg("concurrency", 16);
const creds = appCredentials();

interface LoadResult {
  paced: number[];
  flat: number[];
  flatPerSecond: number;
  failures: number;
  delivered: number;
}

async function load(url: string): Promise<LoadResult> {
  const { stdout } = await run("npx", ["tsx", "bench/load-generator.ts", url, creds.secret, String(rate), String(seconds), String(flat), String(concurrency)], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

async function bare(): Promise<LoadResult> {
  const port = await freePort();
  const log = pino({ level: "info" }, nullSink());
  const server = new Server({ host: "127.0.0.1", port, log, Probot: Probot.defaults({ ...creds, log }) });
  await server.load((app) => {
    app.on("issues.labeled", async () => undefined);
  });
  await server.start();
  try {
    return await load(`http://127.0.0.1:${port}/api/github/webhooks`);
  } finally {
    await server.stop();
  }
}

async function ours(): Promise<LoadResult & { jobs: number }> {
  const loaded = loadControllerConfig({
    APP_ID: String(creds.appId),
    PRIVATE_KEY: creds.privateKey,
    WEBHOOK_SECRET: creds.secret,
    HOST: "127.0.0.1",
    PORT: String(await freePort()),
    METRICS_PORT: "0",
    DATA_DIR: tempDataDir(),
    LOG_LEVEL: "info",
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  // The webhook path alone: the scheduler (which would call GitHub) is not started.
  const controller = await startController({ config: loaded.config, logDestination: nullSink(), autoSchedule: false });
  try {
    const result = await load(`${controller.url}/api/github/webhooks`);
    const counts = await controller.store.countByState();
    return { ...result, jobs: Object.values(counts).reduce((a, b) => a + b, 0) };
  } finally {
    await controller.close();
  }
}

export async function ingestBench(): Promise<BenchRow[]> {
  const b = await bare();
  const o = await ours();
  const p99Bare = percentile(b.paced, 99);
  const p99Ours = percentile(o.paced, 99);
  return [
    {
      bench: `ingest p99 at ${rate}/s`,
      figure: ms(p99Ours),
      reference: `bare Probot ${ms(p99Bare)} (×${(p99Ours / p99Bare).toFixed(2)})`,
      goal: "≤ 1.5× bare",
      met: p99Ours <= 1.5 * p99Bare,
    },
    {
      bench: `ingest flat out (${concurrency} in flight)`,
      figure: `${o.flatPerSecond.toFixed(0)}/s`,
      reference: `bare Probot ${b.flatPerSecond.toFixed(0)}/s (×${(o.flatPerSecond / b.flatPerSecond).toFixed(2)})`,
      goal: "≥ 0.5× bare",
      met: o.flatPerSecond >= 0.5 * b.flatPerSecond,
    },
    {
      bench: "ingest: deliveries → jobs",
      figure: `${o.delivered} → ${o.jobs} jobs, ${o.failures} failed`,
      reference: `bare: ${b.delivered} answered, ${b.failures} failed`,
      goal: "each delivery exactly one job",
      met: o.jobs === o.delivered && o.failures === 0,
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) report(await ingestBench());
