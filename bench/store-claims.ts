/**
 * store-claims: how fast the store hands out jobs, and what one job costs it, on the embedded
 * SQLite store and on PostgreSQL, in one run.
 *   - claim throughput: `--jobs` queued jobs claimed by `--claimers` concurrent claim loops taking
 *     `--batch` at a time (a scheduler pass takes up to 20), spread over two replicas' pools on
 *     PostgreSQL (one connection on SQLite, which serves one controller); every job must be
 *     claimed exactly once.
 *   - per-job overhead: the store work of one job from delivery to `succeeded` (the inserts,
 *     claims, transitions, lease renewals, ledger reservation and bill, 20 log lines the pipeline
 *     writes), one job after another, so it is latency, not throughput.
 * PostgreSQL is the one the tests use (TEST_POSTGRES_URL, default 127.0.0.1:5432), in a throwaway
 * database. Goals: a scheduler pass claims at most 20 jobs and runs about once a second, so 200
 * claims/s serves ten replicas flat out; 50 ms of store work is nothing beside a job's minutes.
 *   npx tsx bench/store-claims.ts --jobs 2000 --claimers 8 --batch 10 --lifecycles 200
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Kysely } from "kysely";
import { openStore } from "../src/store/open-store.js";
import { JobStore } from "../src/store/job-store.js";
import { INITIAL_STEPS } from "../src/store/job-rows.js";
import { newJobId } from "../src/store/new-job-id.js";
import type { Database } from "../src/store/schema.js";
import type { NewJob } from "../src/jobs/types.js";
import { JobLog } from "../src/logs/job-log.js";
import { Ledger } from "../src/cost/ledger.js";
import { costOf, priceJob } from "../src/cost/price-job.js";
import { createTestDatabase } from "../test/support/postgres.js";
import { arg, ms, percentile, report, type BenchRow } from "./lib.js";

const jobs = arg("jobs", 1000);
const claimers = arg("claimers", 8);
const batch = arg("batch", 10);
const lifecycles = arg("lifecycles", 100);
const CLAIMS_GOAL = 200;
const OVERHEAD_GOAL_MS = 50;

type Kind = "sqlite" | "postgres";

interface Opened {
  /** Opens a connection (a pool on PostgreSQL) to this store; each is closed by `close()`. */
  open(): Promise<Kysely<Database>>;
  close(): Promise<void>;
}

async function openKind(kind: Kind): Promise<Opened> {
  const dbs: Kysely<Database>[] = [];
  if (kind === "sqlite") {
    const dataDir = mkdtempSync(path.join(tmpdir(), "aw-bench-store-"));
    return {
      open: async () => dbs[dbs.push(await openStore({ dataDir })) - 1]!,
      async close() {
        await Promise.all(dbs.map((db) => db.destroy()));
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
  const database = await createTestDatabase();
  return {
    open: async () => dbs[dbs.push(await openStore({ dataDir: ":unused:", databaseUrl: database.url })) - 1]!,
    async close() {
      await Promise.all(dbs.map((db) => db.destroy()));
      await database.drop();
    },
  };
}

function newJob(number: number): NewJob {
  return {
    deliveryId: `bench-${number}-${Math.random()}`,
    installationId: 4242,
    repoId: 1296269,
    owner: "Codertocat",
    repo: "Hello-World",
    number,
    kind: "issue",
    trigger: "label",
    requester: "Codertocat",
    title: `issue ${number}`,
    body: "benchmark",
    cloneUrl: "https://github.com/Codertocat/Hello-World.git",
    defaultBranch: "master",
    instructions: null,
  };
}

/** `count` queued jobs written in bulk (seeding is not what is measured). */
async function seedQueued(db: Kysely<Database>, count: number): Promise<void> {
  const now = Date.now();
  for (let i = 0; i < count; i += 200) {
    const rows = Array.from({ length: Math.min(200, count - i) }, (_, k) => {
      const j = newJob(i + k + 1);
      return {
        id: newJobId(),
        delivery_id: j.deliveryId,
        installation_id: j.installationId,
        repo_id: j.repoId,
        owner: j.owner,
        repo: j.repo,
        number: j.number,
        kind: j.kind,
        trigger: j.trigger,
        requester: j.requester,
        title: j.title,
        body: j.body,
        clone_url: j.cloneUrl,
        default_branch: j.defaultBranch,
        instructions: null,
        config_json: null,
        state: "queued",
        active_key: `${j.repoId}#${j.number}`,
        priority: 0,
        backend: "local",
        steps_json: JSON.stringify(INITIAL_STEPS),
        attempts: 0,
        created_at: now + i + k,
        updated_at: now,
      };
    });
    await db
      .insertInto("jobs")
      .values(rows as never)
      .execute();
  }
}

async function claimThroughput(kind: Kind): Promise<{ perSecond: number; p50: number; twice: number; claimed: number }> {
  const opened = await openKind(kind);
  try {
    const first = await opened.open();
    const replicas = kind === "postgres" ? [new JobStore(first), new JobStore(await opened.open())] : [new JobStore(first)];
    await seedQueued(first, jobs);
    const seen = new Map<string, number>();
    const calls: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: claimers }, async (_, i) => {
        const store = replicas[i % replicas.length]!;
        for (;;) {
          const t = performance.now();
          const got = await store.claim(["queued"], `owner-${i}`, 600_000, batch);
          calls.push(performance.now() - t);
          if (got.length === 0) return;
          for (const job of got) seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    return { perSecond: seen.size / seconds, p50: percentile(calls, 50), twice: [...seen.values()].filter((n) => n > 1).length, claimed: seen.size };
  } finally {
    await opened.close();
  }
}

async function perJobOverhead(kind: Kind): Promise<{ mean: number; p95: number }> {
  const opened = await openKind(kind);
  try {
    const db = await opened.open();
    const store = new JobStore(db);
    const logs = new JobLog(db);
    const ledger = new Ledger(db);
    const pricing = priceJob({ backend: "local" }, undefined);
    const budgets = { jobUsd: 1, repoMonthlyUsd: 20, globalHourlyUsd: 5 };
    const times: number[] = [];
    for (let i = 0; i < lifecycles; i++) {
      const t = performance.now();
      const { job } = await store.insertReceived(newJob(i + 1), { backend: "local" });
      // Intake: claimed, admitted, lease released.
      await store.claim(["received"], "me", 60_000, 20);
      await store.transition(job.id, "received", "queued", { config: { maxMinutes: 30 } as never });
      await store.releaseLease(job.id, "me");
      // Run: claimed, reserved, a worker, running with heartbeats and log lines, reported, billed.
      await store.claim(["queued"], "me", 60_000, 20);
      await ledger.reserve({
        jobId: job.id,
        repoId: job.repoId,
        repoFullName: "Codertocat/Hello-World",
        pricing,
        ceilingUsd: costOf(pricing, 1800).totalUsd,
        budgets,
      });
      await store.transition(job.id, "queued", "provisioning", { startedAt: Date.now(), deadlineAt: Date.now() + 1_800_000 });
      await store.update(job.id, { worker: { id: `w-${job.id}`, backend: "local", jobId: job.id, createdAt: Date.now(), meta: {} } });
      await store.transition(job.id, "provisioning", "running");
      for (let k = 0; k < 20; k++) logs.append(job.id, "stdout", `working on step ${k}`);
      await store.renewLease(job.id, "me", 60_000);
      await logs.flush();
      await store.transition(job.id, "running", "reporting", {
        result: { outcome: "no_changes", message: "nothing to change", computeSeconds: 60, aborted: false },
      });
      await ledger.billWorker(job.id, { id: `w-${job.id}`, createdAt: Date.now() - 60_000 }, Date.now(), pricing);
      await ledger.finalize(job.id);
      await store.transition(job.id, "reporting", "succeeded", { finishedAt: Date.now(), computeSeconds: 60 });
      await store.releaseLease(job.id, "me");
      times.push(performance.now() - t);
    }
    return { mean: times.reduce((a, b) => a + b, 0) / times.length, p95: percentile(times, 95) };
  } finally {
    await opened.close();
  }
}

export async function storeClaimsBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const kind of ["sqlite", "postgres"] as const) {
    try {
      const claims = await claimThroughput(kind);
      const spread = kind === "postgres" ? `${claimers} claim loops over 2 replicas' pools` : `${claimers} claim loops on one connection`;
      rows.push({
        bench: `store-claims: claims/s on ${kind}`,
        figure: `${Math.round(claims.perSecond)} claims/s`,
        reference: `${claims.claimed} of ${jobs} jobs, ${spread}, batch ${batch}; p50 ${ms(claims.p50)} a claim call; ${claims.twice} claimed twice`,
        goal: `≥ ${CLAIMS_GOAL}/s, none twice`,
        met: claims.perSecond >= CLAIMS_GOAL && claims.twice === 0 && claims.claimed === jobs,
      });
      const overhead = await perJobOverhead(kind);
      rows.push({
        bench: `store-claims: store work per job on ${kind}`,
        figure: `${ms(overhead.mean)} per job`,
        reference: `p95 ${ms(overhead.p95)}; ${lifecycles} jobs from delivery to succeeded, one after another`,
        goal: `≤ ${OVERHEAD_GOAL_MS} ms`,
        met: overhead.mean <= OVERHEAD_GOAL_MS,
      });
    } catch (err) {
      rows.push({
        bench: `store-claims: ${kind}`,
        figure: "did not run",
        reference: err instanceof Error ? err.message.split("\n")[0]! : String(err),
        goal: "-",
        met: false,
      });
    }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) report(await storeClaimsBench());
