/**
 * footprint: the controller's RSS and event-loop delay with many active jobs. The controller runs
 * as its own process from the build (dist/, as `npm start` runs it) with a fast fake backend whose
 * workers stay busy and log a line a second each; GitHub is a fake HTTP server in this process.
 *   npm run bench:footprint -- --jobs 500 --seconds 10
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { startFakeGitHubServer } from "./fake-github-server.js";
import { appCredentials, freePort, tempDataDir } from "./support.js";
import { deliver, labeledPayload } from "../test/support/payloads.js";
import { arg, ms, report, type BenchRow } from "./lib.js";

const jobs = arg("jobs", 500);
const seconds = arg("seconds", 8);

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

export async function footprintBench(): Promise<BenchRow[]> {
  execFileSync("npm", ["run", "build", "--silent"], { stdio: "ignore" });
  const github = await startFakeGitHubServer();
  const creds = appCredentials();
  // The V8 flags `npm start` uses (package.json); FOOTPRINT_NODE_FLAGS replaces them to compare.
  const flags = process.env.FOOTPRINT_NODE_FLAGS ?? "--max-semi-space-size=2 --max-old-space-size=160";
  const child = spawn(process.execPath, [...flags.split(" ").filter(Boolean), "bench/controller-child.mjs"], {
    env: {
      PATH: process.env.PATH,
      APP_ID: String(creds.appId),
      PRIVATE_KEY: creds.privateKey,
      WEBHOOK_SECRET: creds.secret,
      GHE_HOST: github.host,
      GHE_PROTOCOL: "http",
      HOST: "127.0.0.1",
      PORT: String(await freePort()),
      METRICS_PORT: "0",
      DATA_DIR: tempDataDir(),
      MAX_CONCURRENT_JOBS: String(jobs),
      // Every job reserves its ceiling until billed: at the default $5 an hour only ~5 jobs of the
      // 500 were let run, and the row measured 5 (bench-processes.ts lifts them the same way).
      BUDGET_GLOBAL_HOURLY_USD: "1000000",
      BUDGET_REPO_MONTHLY_USD: "1000000",
      LOG_LEVEL: "info",
      STATUS_UPDATE_INTERVAL_SECONDS: "30",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const next = (prefix: string) =>
    new Promise<string>((resolve) => {
      const on = (l: string) => {
        if (!l.startsWith(prefix)) return;
        lines.off("line", on);
        resolve(l.slice(prefix.length + 1));
      };
      lines.on("line", on);
    });
  const figures = async () => {
    const line = next("FIGURES");
    child.kill("SIGUSR2");
    return JSON.parse(await line) as { running: number; p99: number; mean: number; max: number; heapUsed: number; heapTotal: number; external: number };
  };
  try {
    const url = await next("READY");
    const idle = rssMb(child.pid!);
    for (let i = 0; i < jobs; i += 25) {
      await Promise.all(
        Array.from({ length: Math.min(25, jobs - i) }, (_, k) =>
          deliver(url, creds.secret, "issues", labeledPayload({ number: i + k + 1, cloneUrl: "https://github.com/o/r.git" })),
        ),
      );
    }
    const t0 = Date.now();
    let running = 0;
    while (running < jobs && Date.now() - t0 < 180_000) {
      await new Promise((r) => setTimeout(r, 500));
      running = (await figures()).running;
    }
    await figures(); // start the measured window
    let peak = 0;
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      peak = Math.max(peak, rssMb(child.pid!));
      await new Promise((r) => setTimeout(r, 250));
    }
    if (process.env.FOOTPRINT_SNAPSHOT) {
      child.kill("SIGUSR1");
      await new Promise((r) => setTimeout(r, 15000));
    }
    const f = await figures();
    return [
      {
        bench: `footprint: ${f.running} active jobs`,
        figure: `RSS ${peak.toFixed(0)} MB`,
        reference: `${idle.toFixed(0)} MB idle; heap ${f.heapUsed}/${f.heapTotal} MB, external ${f.external} MB`,
        goal: "≤ 150 MB",
        met: peak <= 150 && f.running === jobs,
      },
      {
        bench: `footprint: event-loop delay, ${seconds} s`,
        figure: `p99 ${ms(f.p99)}`,
        reference: `mean ${ms(f.mean)}, max ${ms(f.max)}`,
        goal: "p99 ≤ 50 ms",
        met: f.p99 <= 50,
      },
    ];
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    await github.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) report(await footprintBench());
