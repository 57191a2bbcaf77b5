/**
 * One pass of the reaper: a level-triggered reconcile between what the backends hold and what the
 * jobs table says, so nothing is left running and no job waits forever, whatever crashed when.
 *
 *   list every backend's workers ─► time out jobs past deadline + grace (then destroy their worker)
 *                                 ─► orphans: a worker no live job owns is MARKED; a worker still
 *                                    marked and still unowned on the next pass is DESTROYED; one
 *                                    that became owned in between is unmarked (never killed)
 *                                 ─► vanished: a provisioning/running job whose worker is missing
 *                                    from a complete listing is marked, and FAILED if the next
 *                                    pass still misses it
 *
 * Each destructive act needs two sightings, one pass apart: a single listing can race a create
 * that is finishing or a teardown that is starting. A listing that could not see everything
 * (IncompleteListError) still lets the reaper remove orphans it did see, but never lets it
 * conclude that a worker vanished. The marks live in the store (`reaper_marks`), so a restart
 * between two passes loses nothing. With `dryRun` the pass decides and reports, and changes nothing.
 */
import type { Logger } from "pino";
import { IncompleteListError } from "../backends/incomplete-list-error.js";
import type { Backend, Worker } from "../backends/types.js";
import { isTerminal, type JobState } from "../jobs/state.js";
import type { Job } from "../jobs/types.js";
import { StaleStateError, type JobStore } from "../store/job-store.js";
import { ReaperMarkStore, reaperMarkKey, type ReaperMark } from "../store/reaper-marks.js";
import { ADVISORY_LOCKS, runExclusively } from "../store/advisory-lock.js";
import { jobEndedEffects } from "../store/outbox-store.js";

export type ReaperLog = Pick<Logger, "info" | "warn" | "error">;

export interface ReapDeps {
  store: JobStore;
  backends: ReadonlyMap<string, Backend>;
  now: () => number;
  log: ReaperLog;
  /** Decide and report only: no mark written, no worker destroyed, no job moved. */
  dryRun?: boolean;
  /** How long past its `deadlineAt` a job may still be provisioning or running (default 120 000 ms). */
  deadlineGraceMs?: number;
  /**
   * Called after the reaper ended a job (failed or timed out): e.g. deliver at once the effects
   * the end wrote to the outbox (its final status). Without it (the ops CLI), a controller's sweep does.
   */
  onJobEnded?: (job: Job) => Promise<void>;
  /** The marks table; by default the one in `store`'s database. */
  marks?: ReaperMarkStore;
}

export type ReapActionKind = "mark-orphan" | "unmark-orphan" | "destroy-orphan" | "mark-vanished" | "unmark-vanished" | "fail-vanished" | "time-out";

export interface ReapAction {
  kind: ReapActionKind;
  backend: string;
  workerId: string | null;
  jobId: string;
  reason: string;
  /** Set when the act was attempted and failed; the next pass tries again. */
  error?: string;
}

export interface ReapReport {
  dryRun: boolean;
  startedAt: number;
  before: { workers: Record<string, number>; marks: number; liveJobs: number };
  after: { workers: Record<string, number>; marks: number };
  actions: ReapAction[];
  /** Backends whose listing was partial or failed, with why. */
  incomplete: string[];
  /** What each backend's maintain() did (pool fills and drains, swept secrets); empty on a dry run. */
  maintenance?: { backend: string; kind: string; id: string; reason: string; error?: string }[];
  /** Set when the pass did not run because another replica's pass held the lock (nothing was looked at). */
  skipped?: string;
}

/** Job states in which a job has (or is getting) a worker the reaper must not take away. */
const RUNNING_STATES: readonly JobState[] = ["provisioning", "running"];
const DEFAULT_DEADLINE_GRACE_MS = 120_000;

interface Listing {
  workers: Worker[];
  /** The listing saw everything the backend holds. */
  complete: boolean;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function listAll(backends: ReadonlyMap<string, Backend>, incomplete: string[]): Promise<Map<string, Listing>> {
  const listings = new Map<string, Listing>();
  await Promise.all(
    [...backends].map(async ([name, backend]) => {
      try {
        listings.set(name, { workers: await backend.list(), complete: true });
      } catch (err) {
        if (err instanceof IncompleteListError) {
          listings.set(name, { workers: err.workers, complete: false });
          incomplete.push(`${name}: ${err.unreachable.join("; ")}`);
        } else {
          listings.set(name, { workers: [], complete: false });
          incomplete.push(`${name}: ${errorText(err)}`);
        }
      }
    }),
  );
  return listings;
}

/**
 * One pass, and only one at a time across every replica sharing the store: on PostgreSQL a pass
 * holds an advisory lock, and a replica that finds it taken skips its pass (the other replica is
 * doing the work; two would mark and destroy in a race). A dry run changes nothing, so it takes no
 * lock. On SQLite there is one controller, and Reaper.tick keeps its passes apart.
 */
export async function reap(deps: ReapDeps): Promise<ReapReport> {
  if (deps.dryRun) return reapPass(deps);
  const outcome = await runExclusively(deps.store.db, ADVISORY_LOCKS.reaperPass, () => reapPass(deps));
  if (outcome.ran) return outcome.value;
  const skipped = "another replica's reaper pass is under way";
  deps.log.info({ skipped }, "reaper pass skipped: another replica's pass is under way");
  const none = { workers: {}, marks: 0 };
  return { dryRun: false, startedAt: deps.now(), before: { ...none, liveJobs: 0 }, after: none, actions: [], incomplete: [], skipped };
}

async function reapPass(deps: ReapDeps): Promise<ReapReport> {
  const { store, backends, log } = deps;
  const dryRun = deps.dryRun ?? false;
  const graceMs = deps.deadlineGraceMs ?? DEFAULT_DEADLINE_GRACE_MS;
  const marks = deps.marks ?? new ReaperMarkStore(store.db);
  const startedAt = deps.now();
  const actions: ReapAction[] = [];
  const incomplete: string[] = [];

  // Workers first, jobs second: a worker listed here existed before any job state read below.
  const listings = await listAll(backends, incomplete);
  const marked = new Map((await marks.list()).map((m) => [m.key, m]));
  const live: Job[] = (await Promise.all(RUNNING_STATES.map((state) => store.list({ state, limit: 100_000 })))).flat();
  const counts = (removed: Set<string>) =>
    Object.fromEntries([...listings].map(([name, l]) => [name, l.workers.filter((w) => !removed.has(`${name}:${w.id}`)).length]));
  const before = { workers: counts(new Set()), marks: marked.size, liveJobs: live.length };
  log.info({ dryRun, ...before, incomplete }, "reaper pass starting");

  const destroyed = new Set<string>();
  let marksNow = marked.size;
  const act = async (action: ReapAction, effect: () => Promise<void>) => {
    actions.push(action);
    if (dryRun) return;
    try {
      await effect();
    } catch (err) {
      action.error = errorText(err);
      log.warn({ ...action }, "reaper action failed; the next pass tries again");
    }
  };
  const setMark = (m: Omit<ReaperMark, "key">) => async () => {
    await marks.mark(m);
    marksNow += 1;
  };
  const clearMark = (key: string) => async () => {
    await marks.unmark(key);
    marksNow -= 1;
  };
  const destroyWorker = async (backendName: string, worker: Worker) => {
    const backend = backends.get(backendName);
    if (!backend) throw new Error(`backend ${backendName} is not enabled on this controller`);
    await backend.destroy(worker);
    destroyed.add(`${backendName}:${worker.id}`);
  };
  const endJob = async (job: Job, to: JobState, message: string): Promise<Job | null> => {
    try {
      // The token revoke and the final status are written with the end (the outbox): whoever
      // runs the next sweep delivers them if onJobEnded cannot, or this process dies first.
      const ended = await store.transition(job.id, job.state, to, { message, finishedAt: deps.now() }, `reaper: ${message}`, {
        effects: jobEndedEffects(job, deps.now()),
      });
      await deps.onJobEnded?.(ended).catch((err: unknown) => log.warn({ jobId: job.id, err }, "could not publish the status of a job the reaper ended"));
      return ended;
    } catch (err) {
      // The job moved on its own since it was read: nothing for the reaper to do.
      if (err instanceof StaleStateError) return null;
      throw err;
    }
  };

  // 1. Jobs past their deadline: written first (timed_out), then their worker goes.
  const timedOut = new Set<string>();
  for (const job of live) {
    if (job.deadlineAt === null || startedAt <= job.deadlineAt + graceMs) continue;
    timedOut.add(job.id);
    const late = Math.round((startedAt - job.deadlineAt) / 1000);
    const backendName = job.worker?.backend ?? job.backend;
    await act(
      { kind: "time-out", backend: backendName, workerId: job.worker?.id ?? null, jobId: job.id, reason: `${job.state} ${late}s past its deadline` },
      async () => {
        const ended = await endJob(job, "timed_out", `the job ran ${late}s past its deadline and was stopped`);
        if (ended && job.worker) await destroyWorker(job.worker.backend, job.worker);
      },
    );
  }

  // 2. Orphans: every listed worker, owned or not.
  const jobs = new Map<string, Job | undefined>();
  const jobOf = async (id: string) => {
    if (!jobs.has(id)) jobs.set(id, await store.get(id));
    return jobs.get(id);
  };
  /** Marks this pass has already looked at; the rest are checked for staleness at the end. */
  const seen = new Set<string>();
  for (const [backendName, listing] of listings) {
    for (const worker of listing.workers) {
      const key = reaperMarkKey("orphan", backendName, worker.id);
      seen.add(key);
      if (destroyed.has(`${backendName}:${worker.id}`)) continue;
      const owner = await jobOf(worker.jobId);
      const mark = marked.get(key);
      if (owner && !isTerminal(owner.state)) {
        if (mark)
          await act(
            { kind: "unmark-orphan", backend: backendName, workerId: worker.id, jobId: worker.jobId, reason: `owned by job ${owner.id} (${owner.state})` },
            clearMark(key),
          );
        continue;
      }
      const reason = owner ? `its job is ${owner.state}` : "no job has its id";
      if (mark && mark.markedAt < startedAt) {
        await act(
          {
            kind: "destroy-orphan",
            backend: backendName,
            workerId: worker.id,
            jobId: worker.jobId,
            reason: `${reason} (marked ${Math.round((startedAt - mark.markedAt) / 1000)}s ago)`,
          },
          async () => {
            await destroyWorker(backendName, worker);
            await clearMark(key)();
          },
        );
      } else if (!mark) {
        await act(
          { kind: "mark-orphan", backend: backendName, workerId: worker.id, jobId: worker.jobId, reason },
          setMark({ kind: "orphan", backend: backendName, workerId: worker.id, jobId: worker.jobId, markedAt: startedAt, worker }),
        );
      }
    }
  }

  // 3. Jobs whose worker is gone from a listing that saw everything.
  const liveIds = new Set(live.map((j) => j.id));
  for (const job of live) {
    if (timedOut.has(job.id) || !job.worker) continue; // no worker recorded yet: create() is under way
    // A live lease means a controller is running the job and will see its worker fail. This pass
    // may not see that worker at all: `local` workers are listed only on the reaper's own host.
    if (job.leaseExpiresAt !== null && job.leaseExpiresAt > startedAt) continue;
    const backendName = job.worker.backend;
    const listing = listings.get(backendName);
    if (!listing?.complete) continue;
    const key = reaperMarkKey("vanished", backendName, job.id);
    seen.add(key);
    const mark = marked.get(key);
    const present = listing.workers.some((w) => w.jobId === job.id);
    if (present) {
      if (mark)
        await act(
          { kind: "unmark-vanished", backend: backendName, workerId: job.worker.id, jobId: job.id, reason: "its worker is listed again" },
          clearMark(key),
        );
      continue;
    }
    if (mark && mark.markedAt < startedAt) {
      const message = `its worker (${job.worker.id} on the ${backendName} backend) disappeared while the job was ${job.state}, so nothing was running it any more`;
      await act({ kind: "fail-vanished", backend: backendName, workerId: job.worker.id, jobId: job.id, reason: `missing from two listings` }, async () => {
        await endJob(job, "failed", message);
        await clearMark(key)();
      });
    } else if (!mark) {
      await act(
        { kind: "mark-vanished", backend: backendName, workerId: job.worker.id, jobId: job.id, reason: "missing from the listing" },
        setMark({ kind: "vanished", backend: backendName, workerId: job.worker.id, jobId: job.id, markedAt: startedAt, worker: job.worker }),
      );
    }
  }

  // 4. Marks about things that are gone: a worker absent from a complete listing, a job no longer running.
  for (const mark of marked.values()) {
    if (seen.has(mark.key)) continue;
    const stale = mark.kind === "orphan" ? listings.get(mark.backend)?.complete === true : !liveIds.has(mark.jobId) || timedOut.has(mark.jobId);
    if (stale) {
      await act(
        {
          kind: mark.kind === "orphan" ? "unmark-orphan" : "unmark-vanished",
          backend: mark.backend,
          workerId: mark.workerId,
          jobId: mark.jobId,
          reason: mark.kind === "orphan" ? "the worker is gone" : "the job is no longer running",
        },
        clearMark(mark.key),
      );
    }
  }

  // 5. Each backend's own housekeeping (a warm pool kept filled and honest, leftover secrets):
  // what is not a job's worker, so not the marks' business. A dry run leaves it alone.
  const maintenance: ReapReport["maintenance"] = [];
  if (!dryRun) {
    for (const [backendName, backend] of backends) {
      if (!backend.maintain) continue;
      try {
        const done = await backend.maintain();
        for (const a of done.actions) maintenance.push({ backend: backendName, ...a });
      } catch (err) {
        maintenance.push({ backend: backendName, kind: "maintain", id: backendName, reason: "housekeeping pass", error: errorText(err) });
        log.warn({ backend: backendName, err }, "backend housekeeping failed; the next pass tries again");
      }
    }
  }

  const after = { workers: counts(destroyed), marks: dryRun ? marked.size : marksNow };
  const tally = actions.reduce<Record<string, number>>((acc, a) => ({ ...acc, [a.kind]: (acc[a.kind] ?? 0) + 1 }), {});
  const housekeeping = maintenance.reduce<Record<string, number>>((acc, a) => ({ ...acc, [a.kind]: (acc[a.kind] ?? 0) + 1 }), {});
  log.info(
    { dryRun, before, after, actions: tally, housekeeping, failed: actions.filter((a) => a.error).length, incomplete },
    dryRun ? "reaper dry run finished; nothing was changed" : "reaper pass finished",
  );
  return { dryRun, startedAt, before, after, actions, incomplete, maintenance };
}
