import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open-store.js";
import { JobStore } from "../../src/store/job-store.js";
import { isTerminal, type JobState } from "../../src/jobs/state.js";
import type { Database } from "../../src/store/schema.js";
import { compiledArgs } from "../support/compiled-args.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { freePort } from "../support/harness.js";
import { deliver, labeledPayload } from "../support/payloads.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENTRY = fileURLToPath(new URL("../support/controller-process.ts", import.meta.url));
const JOBS = 200;

interface Replica {
  name: string;
  child: ChildProcess;
  url: string;
  stderr: string[];
}

/** Starts test/support/controller-process.ts (compiled) and waits for its READY line. */
async function startReplica(name: string, env: Record<string, string>): Promise<Replica> {
  const child = spawn(process.execPath, compiledArgs(ENTRY), {
    cwd: ROOT,
    env: { ...process.env, ...env, AW_RUNNER: name },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stderr: string[] = [];
  child.stderr!.on("data", (d: Buffer) => stderr.push(...d.toString("utf8").split("\n").filter(Boolean)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s:\n${stderr.slice(-20).join("\n")}`)), 30_000);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      const ready = /READY (\S+)/.exec(out);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready:\n${stderr.slice(-20).join("\n")}`));
    });
  });
  return { name, child, url, stderr };
}

async function stopReplica(r: Replica): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  const exited = new Promise((resolve) => r.child.once("exit", resolve));
  r.child.kill("SIGTERM");
  const timer = setTimeout(() => r.child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

describe("two controllers on one PostgreSQL database", () => {
  let database: TestDatabase;
  let db: Kysely<Database>;
  const replicas: Replica[] = [];
  const dataDirs: string[] = [];
  const secret = randomBytes(32).toString("hex");

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openStore({ dataDir: ":unused:", databaseUrl: database.url });
    // Where the fake backend of each controller writes down every run it makes.
    await sql`create table fake_runs (job_id text not null, runner text not null, at bigint not null)`.execute(db);
    const { privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const env = async (): Promise<Record<string, string>> => {
      const dataDir = mkdtempSync(path.join(tmpdir(), "aw-replica-"));
      dataDirs.push(dataDir);
      return {
        APP_ID: "1234",
        PRIVATE_KEY: privateKey,
        WEBHOOK_SECRET: secret,
        HOST: "127.0.0.1",
        PORT: String(await freePort()),
        // Two replicas on one machine: the default metrics port would clash, and nothing scrapes them here.
        METRICS_PORT: "0",
        DATA_DIR: dataDir,
        DATABASE_URL: database.url,
        LOG_LEVEL: "warn",
        MAX_CONCURRENT_JOBS: "20",
        SCHEDULER_INTERVAL_MS: "50",
        LEASE_SECONDS: "30",
        STATUS_UPDATE_INTERVAL_SECONDS: "30",
      };
    };
    replicas.push(...(await Promise.all([startReplica("replica-a", await env()), startReplica("replica-b", await env())])));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(replicas.map(stopReplica));
    await db?.destroy();
    await database?.drop();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it(`run each of ${JOBS} jobs exactly once, wherever their webhooks land, and finish them all`, async () => {
    // Deliveries alternate between the replicas, 20 at a time, each a new issue.
    for (let i = 0; i < JOBS; i += 20) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, k) => {
          const number = i + k + 1;
          const payload = labeledPayload({
            number,
            title: `issue ${number}`,
            body: "nothing to change",
            cloneUrl: "https://github.com/Codertocat/Hello-World.git",
          });
          return deliver(replicas[number % 2]!.url, secret, "issues", payload);
        }),
      );
      expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 20 }, () => 200));
    }

    const store = new JobStore(db);
    const deadline = Date.now() + 90_000;
    let counts: Record<string, number> = {};
    for (;;) {
      counts = await store.countByState();
      const finished = Object.entries(counts).reduce((n, [state, c]) => n + (isTerminal(state as JobState) ? c : 0), 0);
      if (finished === JOBS || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const tail = replicas.map((r) => `${r.name}:\n${r.stderr.slice(-10).join("\n")}`).join("\n");
    expect(counts, tail).toEqual({ succeeded: JOBS });

    // Each job ran once: one row per job in what the fake backends recorded, and one start each.
    const runs = await sql<{ job_id: string; runner: string }>`select job_id, runner from fake_runs`.execute(db);
    const perJob = new Map<string, number>();
    for (const r of runs.rows) perJob.set(r.job_id, (perJob.get(r.job_id) ?? 0) + 1);
    const jobs = await store.list({ limit: JOBS + 10 });
    expect(jobs).toHaveLength(JOBS);
    expect([...perJob.keys()].sort()).toEqual(jobs.map((j) => j.id).sort());
    expect([...perJob.values()].filter((n) => n !== 1)).toEqual([]);
    const starts = await sql<{ job_id: string; n: number }>`
      select job_id, count(*) as n from job_events
      where kind = 'state' and data_json like '%"to":"provisioning"%' group by job_id`.execute(db);
    expect(starts.rows).toHaveLength(JOBS);
    expect(starts.rows.every((r) => r.n === 1)).toBe(true);

    // Both replicas did the work, not one of them alone.
    const byRunner = new Map<string, number>();
    for (const r of runs.rows) byRunner.set(r.runner, (byRunner.get(r.runner) ?? 0) + 1);
    expect([...byRunner.keys()].sort()).toEqual(["replica-a", "replica-b"]);
    console.log(`two controllers: ${JOBS} jobs, ${[...byRunner].map(([name, n]) => `${name} ran ${n}`).join(", ")}`);
  }, 120_000);
});
