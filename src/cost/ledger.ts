import { sql, type Kysely, type Selectable } from "kysely";
import type { Database, LedgerTable } from "../store/schema.js";
import { storeDialect } from "../store/dialect.js";
import { ADVISORY_LOCKS } from "../store/advisory-lock.js";
import { costOf, type JobPricing } from "./price-job.js";
import { bundledPriceTable, type PriceTable } from "./price-table.js";
import { formatUsd } from "./estimate.js";
import type { BackendCap } from "../config/backend-caps.js";

/** The three caps, in USD. The controller's config sets them; a repository may lower its own. */
export interface Budgets {
  jobUsd: number;
  repoMonthlyUsd: number;
  globalHourlyUsd: number;
}

/** `backend_jobs` and `backend_hourly` are BACKEND_CAPS: the job waits for them instead of failing. */
export type BudgetName = "job" | "repo_monthly" | "global_hourly" | "backend_jobs" | "backend_hourly";

export type Reservation =
  | { ok: true; reservedUsd: number }
  | { ok: false; budget: BudgetName; capUsd: number; spentUsd: number; needUsd: number; resetsAt: number | null; message: string };

export interface LedgerEntry {
  jobId: string;
  repoId: number;
  repoFullName: string;
  backend: string;
  machineType: string | null;
  region: string | null;
  spot: boolean;
  rateUsdPerHour: number;
  rateSource: string;
  reservedUsd: number;
  state: "reserved" | "final";
  startedAt: number;
  endedAt: number | null;
  billedSeconds: number | null;
  totalUsd: number | null;
  agentUsage: AgentUsage | null;
}

/**
 * The agent's model use, read from its own output (AgentUsageMeter); never guessed. `costUsd` is
 * absent when neither the CLI nor the model price table gives dollars.
 */
export interface AgentUsage {
  /** The CLI whose output it was read from: `claude-code`, `codex`, `opencode`, `aider`. */
  source: string;
  model?: string;
  costUsd?: number;
  /** `reported by <cli>`, or the price table entry the tokens were priced at. */
  costSource?: string;
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
}

export function monthStart(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export function nextMonthStart(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

export function hourStart(now: number): number {
  return Math.floor(now / 3_600_000) * 3_600_000;
}

function toEntry(r: Selectable<LedgerTable>): LedgerEntry {
  return {
    jobId: r.job_id,
    repoId: Number(r.repo_id),
    repoFullName: r.repo_full_name,
    backend: r.backend,
    machineType: r.machine_type,
    region: r.region,
    spot: Boolean(r.spot),
    rateUsdPerHour: r.rate_usd_per_hour,
    rateSource: r.rate_source,
    reservedUsd: r.reserved_usd,
    state: r.state as LedgerEntry["state"],
    startedAt: Number(r.started_at),
    endedAt: r.ended_at === null ? null : Number(r.ended_at),
    billedSeconds: r.billed_seconds,
    totalUsd: r.total_usd,
    agentUsage: r.agent_usage_json ? JSON.parse(r.agent_usage_json) : null,
  };
}

const iso = (t: number) => new Date(t).toISOString().replace(".000Z", "Z");

/**
 * Spend as the budgets see it: billed figures of finished jobs plus the reserved ceilings of jobs
 * that may still spend. Reserve checks the three caps and writes the reservation in one
 * transaction (on SQLite the single connection serialises them; on PostgreSQL an advisory
 * transaction lock, across every replica).
 */
export class Ledger {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
    private readonly table: PriceTable = bundledPriceTable,
    /**
     * Spend that runs every hour whether a job runs or not (the gce warm pool's parked disks and
     * memory): the hourly budget holds it before any job's ceiling.
     */
    private readonly standingUsdPerHour = 0,
  ) {}

  /**
   * `backendCap` is the chosen backend's BACKEND_CAPS entry: its reserved jobs (a reservation
   * lives from a job's start to its bill, so these are the jobs holding the backend) and its spend
   * this hour are checked in the same step as the budgets, so jobs routed at the same moment, on
   * any replica, cannot overshoot it together.
   */
  async reserve(input: {
    jobId: string;
    repoId: number;
    repoFullName: string;
    pricing: JobPricing;
    ceilingUsd: number;
    budgets: Budgets;
    backendCap?: BackendCap;
  }): Promise<Reservation> {
    const { pricing, ceilingUsd, budgets, backendCap } = input;
    return this.db.transaction().execute(async (trx) => {
      // Replicas reserve at the same instant: the lock makes check-and-insert one step across them,
      // and each statement after it reads what the previous holder committed. Taken before the
      // look for an existing row, so two tries of one job cannot both miss it.
      if (storeDialect(trx) === "postgres") await sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.ledgerReserve})`.execute(trx);
      const existing = await trx.selectFrom("ledger").select(["reserved_usd", "state"]).where("job_id", "=", input.jobId).executeTakeFirst();
      const now = this.now();
      const refuse = (budget: BudgetName, capUsd: number, spentUsd: number, resetsAt: number | null): Reservation => ({
        ok: false,
        budget,
        capUsd,
        spentUsd,
        needUsd: ceilingUsd,
        resetsAt,
        message: refusalMessage(budget, capUsd, spentUsd, ceilingUsd, resetsAt, pricing.backend),
      });
      // A try of a job whose reservation still stands holds its place already.
      if (backendCap && existing?.state !== "reserved") {
        if (backendCap.jobs !== undefined) {
          const holding = await reservedJobsOn(trx, pricing.backend, input.jobId);
          if (holding >= backendCap.jobs) return refuse("backend_jobs", backendCap.jobs, holding, null);
        }
        const need = existing ? existing.reserved_usd : ceilingUsd;
        if (backendCap.usdPerHour !== undefined && need > 0) {
          const hour = await spentSince(trx, hourStart(now), undefined, pricing.backend, input.jobId);
          if (hour + need > backendCap.usdPerHour) return refuse("backend_hourly", backendCap.usdPerHour, hour, hourStart(now) + 3_600_000);
        }
      }
      if (existing) {
        // A job started again (handed back at a shutdown, then run anew) may spend again: its
        // ceiling counts against the caps once more until it is billed, earlier workers included.
        if (existing.state === "final")
          await trx
            .updateTable("ledger")
            .set({ state: "reserved", total_usd: null, ended_at: null, backend: pricing.backend })
            .where("job_id", "=", input.jobId)
            .execute();
        return { ok: true as const, reservedUsd: existing.reserved_usd };
      }
      if (ceilingUsd > budgets.jobUsd) return refuse("job", budgets.jobUsd, 0, null);
      if (ceilingUsd > 0) {
        const month = await spentSince(trx, monthStart(now), input.repoId);
        if (month + ceilingUsd > budgets.repoMonthlyUsd) return refuse("repo_monthly", budgets.repoMonthlyUsd, month, nextMonthStart(now));
        const hour = (await spentSince(trx, hourStart(now))) + this.standingUsdPerHour;
        if (hour + ceilingUsd > budgets.globalHourlyUsd) return refuse("global_hourly", budgets.globalHourlyUsd, hour, hourStart(now) + 3_600_000);
      }
      await trx
        .insertInto("ledger")
        .values({
          job_id: input.jobId,
          repo_id: input.repoId,
          repo_full_name: input.repoFullName,
          backend: pricing.backend,
          machine_type: pricing.machineType ?? null,
          region: pricing.region ?? null,
          spot: pricing.spot ? 1 : 0,
          disk_gb: pricing.diskGb ?? null,
          disk_type: pricing.diskType ?? null,
          rate_usd_per_hour: pricing.rateUsdPerHour,
          rate_source: pricing.source,
          reserved_usd: ceilingUsd,
          state: "reserved",
          started_at: now,
        })
        .execute();
      return { ok: true as const, reservedUsd: ceilingUsd };
    });
  }

  /**
   * Bills one worker of a job, from its creation to `endedAt`, at the price it really ran at. A
   * worker billed before (same id and creation time) is not billed again.
   */
  async billWorker(
    jobId: string,
    worker: { id: string; createdAt: number },
    endedAt: number,
    pricing: JobPricing,
  ): Promise<{ billedSeconds: number; totalUsd: number }> {
    const billedSeconds = Math.max(0, (endedAt - worker.createdAt) / 1000);
    const cost = costOf(pricing, billedSeconds, this.table);
    await this.db
      .insertInto("ledger_workers")
      .values({
        job_id: jobId,
        worker_id: worker.id,
        started_at: worker.createdAt,
        ended_at: endedAt,
        billed_seconds: billedSeconds,
        machine_type: pricing.machineType ?? null,
        region: pricing.region ?? null,
        spot: pricing.spot ? 1 : 0,
        rate_usd_per_hour: pricing.rateUsdPerHour,
        compute_usd: cost.computeUsd,
        disk_usd: cost.diskUsd,
        total_usd: cost.totalUsd,
      })
      .onConflict((oc) => oc.columns(["job_id", "worker_id", "started_at"]).doNothing())
      .execute();
    return { billedSeconds, totalUsd: cost.totalUsd };
  }

  /** The job's worker bills, oldest first. */
  async workerBills(jobId: string): Promise<{ workerId: string; startedAt: number; endedAt: number; billedSeconds: number; totalUsd: number }[]> {
    const rows = await this.db.selectFrom("ledger_workers").selectAll().where("job_id", "=", jobId).orderBy("started_at").execute();
    return rows.map((r) => ({
      workerId: r.worker_id,
      startedAt: Number(r.started_at),
      endedAt: Number(r.ended_at),
      billedSeconds: r.billed_seconds,
      totalUsd: r.total_usd,
    }));
  }

  /**
   * Closes the job's reservation with the sum of its worker bills (every worker it had, not only
   * the last); the reservation stops counting. The placement shown is the last worker's.
   */
  async finalize(jobId: string, agentUsage?: AgentUsage | null): Promise<{ totalUsd: number; billedSeconds: number }> {
    const bills = await this.db.selectFrom("ledger_workers").selectAll().where("job_id", "=", jobId).orderBy("started_at").execute();
    const sum = (k: "billed_seconds" | "compute_usd" | "disk_usd" | "total_usd") => bills.reduce((acc, b) => acc + Number(b[k]), 0);
    const last = bills.at(-1);
    // The model's spend, as the agent reported it (or its tokens at list price), is on the same
    // bill: the budgets count compute and model together. It stays itemised in agent_usage_json.
    // Closed again without a usage (a recovery, a job ended outside its run): what was recorded stands.
    const stored = agentUsage ? undefined : await this.db.selectFrom("ledger").select("agent_usage_json").where("job_id", "=", jobId).executeTakeFirst();
    const usage: AgentUsage | null = agentUsage ?? (stored?.agent_usage_json ? JSON.parse(stored.agent_usage_json) : null);
    const totalUsd = sum("total_usd") + (usage?.costUsd ?? 0);
    await this.db
      .updateTable("ledger")
      .set({
        state: "final",
        ended_at: this.now(),
        // The placement the worker really got (zone or spot fallback) may differ from the reservation's.
        ...(last ? { machine_type: last.machine_type, region: last.region, spot: last.spot, rate_usd_per_hour: last.rate_usd_per_hour } : {}),
        billed_seconds: sum("billed_seconds"),
        compute_usd: sum("compute_usd"),
        disk_usd: sum("disk_usd"),
        total_usd: totalUsd,
        agent_usage_json: usage ? JSON.stringify(usage) : null,
      })
      .where("job_id", "=", jobId)
      .execute();
    return { totalUsd, billedSeconds: sum("billed_seconds") };
  }

  async get(jobId: string): Promise<LedgerEntry | undefined> {
    const row = await this.db.selectFrom("ledger").selectAll().where("job_id", "=", jobId).executeTakeFirst();
    return row ? toEntry(row) : undefined;
  }

  /** A backend's load as BACKEND_CAPS counts it: jobs holding a reservation on it, and its spend this clock hour. */
  async backendLoad(backend: string): Promise<{ jobs: number; spentThisHourUsd: number; hourResetsAt: number }> {
    const now = this.now();
    return {
      jobs: await reservedJobsOn(this.db, backend),
      spentThisHourUsd: await spentSince(this.db, hourStart(now), undefined, backend),
      hourResetsAt: hourStart(now) + 3_600_000,
    };
  }

  /** Billed plus still-reserved spend of a repository this calendar month (UTC). */
  async monthToDate(repoId: number): Promise<number> {
    return spentSince(this.db, monthStart(this.now()), repoId);
  }

  async entriesThisMonth(repoId: number): Promise<LedgerEntry[]> {
    const rows = await this.db
      .selectFrom("ledger")
      .selectAll()
      .where("repo_id", "=", repoId)
      .where("started_at", ">=", monthStart(this.now()))
      .orderBy("started_at")
      .execute();
    return rows.map(toEntry);
  }
}

async function spentSince(db: Kysely<Database>, since: number, repoId?: number, backend?: string, exceptJob?: string): Promise<number> {
  let q = db
    .selectFrom("ledger")
    .select((eb) => eb.fn.sum<number>(eb.fn.coalesce("total_usd", "reserved_usd")).as("spent"))
    .where("started_at", ">=", since);
  if (repoId !== undefined) q = q.where("repo_id", "=", repoId);
  if (backend !== undefined) q = q.where("backend", "=", backend);
  if (exceptJob !== undefined) q = q.where("job_id", "!=", exceptJob);
  const row = await q.executeTakeFirst();
  return Number(row?.spent ?? 0);
}

/** Jobs whose reservation on `backend` stands: started, not yet billed. */
async function reservedJobsOn(db: Kysely<Database>, backend: string, exceptJob?: string): Promise<number> {
  let q = db
    .selectFrom("ledger")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("backend", "=", backend)
    .where("state", "=", "reserved");
  if (exceptJob !== undefined) q = q.where("job_id", "!=", exceptJob);
  const row = await q.executeTakeFirst();
  return Number(row?.n ?? 0);
}

function refusalMessage(budget: BudgetName, cap: number, spent: number, need: number, resetsAt: number | null, backend: string): string {
  switch (budget) {
    case "backend_jobs":
      return `\`${backend}\` is at its cap of ${cap} job${cap === 1 ? "" : "s"} at once (BACKEND_CAPS)`;
    case "backend_hourly":
      return `\`${backend}\` is at its cap of ${formatUsd(cap)} an hour (BACKEND_CAPS): ${formatUsd(spent)} spent or reserved this hour + up to ${formatUsd(need)} for this job; it resets ${iso(resetsAt!)}`;
    case "job":
      return `over the per-job budget: this job could cost up to ${formatUsd(need)}, and one job may cost at most ${formatUsd(cap)} (lower \`max_minutes\` or pick a smaller size)`;
    case "repo_monthly":
      return `over this repository's monthly budget: ${formatUsd(spent)} spent or reserved this month + up to ${formatUsd(need)} for this job > ${formatUsd(cap)}; it resets ${iso(resetsAt!)}`;
    case "global_hourly":
      return `over the controller's hourly budget: ${formatUsd(spent)} spent or reserved this hour + up to ${formatUsd(need)} for this job > ${formatUsd(cap)}; it resets ${iso(resetsAt!)}`;
  }
}
