/**
 * A job takes a parked warm-pool VM: the take (a compare-and-swap on the VM's labels) and the
 * resume run at once, and the VM is the job's only once the take is known to have succeeded.
 *
 * The take sets the job's labels with the label fingerprint the pool's listing read, so of two
 * controllers, or a controller and the reaper (which marks a VM before deleting it, see
 * warm-pool.ts), one changes them and the other is refused. The resume starts as soon as GCE has
 * accepted that setLabels call, while the take's operation is still running (it takes a second or
 * two, the resume several), and the VM is handed to the job only once that operation is done
 * without an error. What each outcome does:
 *
 * - the setLabels call refused (412: another controller took the VM first, or the reaper marked
 *   it), or the VM gone: nothing was done to it, not even a resume; the next VM.
 * - the call accepted but its operation failed (GCE may tell a loser this way too): the resume is
 *   let go, and the VM is deleted unless it is still parked or another job's label is on it (that
 *   job's controller resumes it anyway): a resumed VM that no job owns would bill compute until the
 *   reaper's pass. Then the next VM.
 * - the take done, and the resume refused or failed because the VM is already on its way up (a
 *   loser's resume went first; GCE resumes only a SUSPENDED VM): its status says so, and the take
 *   waits for RUNNING like any other.
 * - the take done, and the resume, SSH or the host key failing otherwise: the VM, this job's now,
 *   is deleted; the next VM.
 *
 * Once the take is done SSH is probed while the resume's operation still runs (see
 * probedWhileWaking), and the VM is the job's as soon as it shows the key recorded at its fill.
 *
 * With none left the caller makes the job's VM the cold way.
 */
import type { JobSpec, Worker } from "../types.js";
import type { Backoff, Clock } from "./backoff.js";
import { classifyGceError } from "./classify-gce-error.js";
import type { ComputeApi, GceInstance, ListedInstance } from "./compute-api.js";
import type { GceLog } from "./gce-backend-options.js";
import { LABEL, hostKeyFromLabel, labelValue } from "./gce-names.js";
import type { ResumedVm } from "./vm-readiness.js";

/**
 * SSH probes of a resumed pool VM: its sshd was running when it was suspended and only the network
 * has to come back (a second or two), so probes stay a quarter of a second apart (jittered down to
 * half that); a boot's backoff (2 s first, up to 10 s) could add more than the wait itself. A
 * probe is one handshake, stopped before any login.
 */
export const RESUMED_SSH_BACKOFF: Backoff = { initialMs: 250, maxMs: 250, multiplier: 1 };

/**
 * One probe of a resumed pool VM gives up after this, not a boot's 10 s: probes start while the
 * resume is still under way, and one sent before the VM's network is back may get no answer at all
 * (a connection to an address with nothing behind it is dropped, not refused) and would hold the
 * next probe. An SSH handshake with a VM in the controller's region takes tens of milliseconds.
 */
export const RESUMED_SSH_PROBE_TIMEOUT_MS = 2000;

/**
 * How many probes of a resumed pool VM may wait for an answer at once: the next one goes every
 * quarter second even while earlier ones hear nothing (sent before the network was back, their
 * SYNs dropped), so the VM is found within a probe's interval of its network's return, not a SYN
 * retransmission (a second) or a probe's timeout later. Enough to keep that pace through one
 * timeout; few enough that the probes arriving together when the network returns stay under
 * sshd's MaxStartups (10 unauthenticated connections before it starts refusing some).
 */
export const RESUMED_SSH_CONCURRENT_PROBES = 8;

/** How SSH is probed on a resumed pool VM. */
const RESUMED: ResumedVm = {
  sshBackoff: RESUMED_SSH_BACKOFF,
  sshProbeTimeoutMs: RESUMED_SSH_PROBE_TIMEOUT_MS,
  sshConcurrentProbes: RESUMED_SSH_CONCURRENT_PROBES,
};

/** Statuses of a VM on its way up after a resume or start: a second one is refused, and not needed. */
const WAKING = new Set(["PROVISIONING", "STAGING", "RUNNING"]);

/** What the take needs from the backend, passed in rather than reached for. */
export interface PoolTakeContext {
  compute: ComputeApi;
  clock: Clock;
  log?: GceLog | undefined;
  /** The status of a parked pool VM: SUSPENDED, or TERMINATED when the pool parks stopped VMs. */
  parked: "SUSPENDED" | "TERMINATED";
  /** When the VM is reached on an ephemeral external address, which a resume may change. */
  externalIp: boolean;
  /** Retries transient failures of one call. */
  retry<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Waits for a zone operation to finish without an error (throws otherwise), within the operation timeout. */
  waitFor(zone: string, operation: string, signal?: AbortSignal): Promise<void>;
  deleteAndWait(zone: string, name: string): Promise<void>;
  /** RUNNING, SSH answering, and the host key checked: the backend's awaitReady. */
  awaitReady(zone: string, instance: GceInstance, deadline: number, signal: AbortSignal, resumed: ResumedVm): Promise<Worker>;
  /** The labels a job's VM carries (job, repository, expiry), added to the pool VM's own. */
  jobLabels(job: JobSpec): Record<string, string>;
}

export interface TakenPoolVm {
  zone: string;
  instance: GceInstance;
  ready: Worker;
}

/** What a take gave the job, and what is still under way for the other VMs it woke. */
export interface PoolTakeOutcome {
  /** The job's VM, or undefined when none could be taken and made ready (the caller goes cold). */
  taken: TakenPoolVm | undefined;
  /** Settles once every other VM this take took is parked again or deleted (a hedge's second VM). */
  settling: Promise<void>;
}

/**
 * A hedged take's second VM is billed for GCE's one-minute minimum or for the time it ran until
 * the first VM answered, whichever is longer, plus this for its suspend (its memory written to
 * storage; counted as running time here, an estimate: GCE documents that a suspend may take
 * minutes but not how its SUSPENDING time is billed). The bill is fixed when the job gets its VM.
 */
export const HEDGE_SUSPEND_BILLED_SECONDS = 60;

/** A VM one lane of the take holds: accepted by GCE, being woken, made ready or given up. */
interface Lane {
  name: string;
  zone: string;
  /** When its resume was asked for (the clock's epoch ms). */
  resumedAt: number;
  /** Its take or its start failed: it went back to whoever won it, or was deleted. */
  givenUp?: boolean;
}

/**
 * Takes one of `candidates` (parked, idle, best first) for the job, or gives none (`taken`
 * undefined) when none could be taken and made ready: the caller then makes a VM the cold way.
 *
 * With `width` 2 the take is hedged: two VMs are taken and resumed at once and the job gets the
 * first to show its recorded key over SSH. A resume's time varies by seconds from one VM to the
 * next, and the faster of two cuts the slow tail of a start (the p95) more than its middle. The
 * other VM, once it is up, is parked again (suspended or stopped, then its pool labels put back),
 * or deleted if that fails; it is billed to the job (HEDGE_SUSPEND_BILLED_SECONDS) and recorded in
 * the worker's meta (`hedgeVm`, `hedgeResumedAt`, `hedgeBilledSeconds`). A take whose
 * compare-and-swap is answered after the job already has its VM never resumes that VM: its labels
 * are put back at once.
 */
export async function takeFromPool(
  ctx: PoolTakeContext,
  job: JobSpec,
  candidates: ListedInstance[],
  deadline: number,
  signal: AbortSignal,
  width = 1,
): Promise<PoolTakeOutcome> {
  const queue = [...candidates];
  const lanes: Lane[] = [];
  const others: Promise<void>[] = [];
  let winner: TakenPoolVm | undefined;
  let won!: (taken: TakenPoolVm) => void;
  const first = new Promise<TakenPoolVm>((resolve) => (won = resolve));

  async function lane(): Promise<void> {
    while (!winner) {
      const next = queue.shift();
      if (!next) return;
      signal.throwIfAborted();
      const { zone, instance } = next;
      const name = instance.name ?? "";
      const labels = { ...(instance.labels ?? {}), ...ctx.jobLabels(job) };
      let take: string;
      try {
        take = await ctx.retry(() => ctx.compute.setLabels(zone, name, labels, instance.labelFingerprint ?? ""), signal);
      } catch (err) {
        if (signal.aborted) throw err;
        ctx.log?.info(
          { jobId: job.jobId, vm: name, err: classifyGceError(err).code },
          "pool VM not taken (another controller or the reaper was first); trying the next",
        );
        continue;
      }
      if (winner) {
        // The job got its VM while this take was on its way: this one is still parked.
        others.push(putBack(ctx, job, zone, name, take, instance.labels ?? {}));
        return;
      }
      // takeAccepted asks for the resume first thing.
      const held: Lane = { name, zone, resumedAt: ctx.clock.now() };
      lanes.push(held);
      const attempt = await takeAccepted(ctx, job, { zone, instance: { ...instance, labels } }, take, deadline, signal);
      if (!attempt) {
        // Deleted, or left to the job whose take won it: not this job's to bill.
        held.givenUp = true;
        continue;
      }
      if (winner) {
        others.push(parkAgain(ctx, job, attempt, instance.labels ?? {}));
        return;
      }
      attempt.letGo();
      winner = attempt.taken;
      won(winner);
      return;
    }
  }

  const all = Array.from({ length: Math.max(1, Math.min(width, candidates.length)) }, () => lane());
  const settled = Promise.all(all);
  // Every lane's failure is read through `settled` or after the winner; never an unhandled rejection.
  settled.catch(() => undefined);
  const result = await Promise.race([first, settled.then(() => undefined)]);
  // A lane that stopped after the job had its VM (the job cancelled) deleted what it held; the
  // other VMs being parked again or put back are waited for either way.
  const settling = settled
    .catch((err: unknown) => ctx.log?.info({ jobId: job.jobId, err: err instanceof Error ? err.message : String(err) }, "a hedged take's other lane stopped"))
    .then(async () => void (await Promise.all(others)));
  if (!result) return { taken: undefined, settling };
  const hedge = lanes.find((l) => l.name !== result.instance.name && !l.givenUp);
  if (!hedge) return { taken: result, settling };
  const ranSeconds = Math.ceil((ctx.clock.now() - hedge.resumedAt) / 1000);
  const billed = Math.max(60, ranSeconds) + HEDGE_SUSPEND_BILLED_SECONDS;
  ctx.log?.info(
    { jobId: job.jobId, vm: result.instance.name, other: hedge.name },
    "hedged take: the job has the first VM to answer; the other goes back to the pool",
  );
  const meta = {
    ...result.ready.meta,
    hedgeVm: hedge.name,
    hedgeZone: hedge.zone,
    hedgeResumedAt: String(hedge.resumedAt),
    hedgeBilledSeconds: String(billed),
  };
  return { taken: { ...result, ready: { ...result.ready, meta } }, settling };
}

/** One VM made ready for the job; `letGo` stops waiting for its resume's operation (the winner's). */
interface Attempt {
  taken: TakenPoolVm;
  /** Its resume's operation (settles, never rejects): a VM parked again must be up first. */
  resumed: Promise<void>;
  letGo(): void;
}

/** One VM whose setLabels call GCE accepted: resume at once, hand it over once the take is done. */
async function takeAccepted(
  ctx: PoolTakeContext,
  job: JobSpec,
  { zone, instance }: ListedInstance,
  take: string,
  deadline: number,
  signal: AbortSignal,
): Promise<Attempt | undefined> {
  const name = instance.name ?? "";
  const letGo = new AbortController();
  const { asked, waking } = wake(ctx, zone, name, AbortSignal.any([signal, letGo.signal]));
  // Read below on every path; never an unhandled rejection while the take is waited for.
  waking.catch(() => undefined);
  try {
    await ctx.waitFor(zone, take, signal);
  } catch (err) {
    letGo.abort(new Error("the take was lost"));
    // Once GCE has answered the resume call, the status read next is after it (whether the
    // resume's operation is done does not matter: a wait on it may go on for seconds).
    await asked;
    ctx.log?.info({ jobId: job.jobId, vm: name, err: classifyGceError(err).code }, "pool VM not taken (its take's operation failed); trying the next");
    await releaseUntaken(ctx, job, zone, name).catch((e: unknown) =>
      ctx.log?.warn({ jobId: job.jobId, vm: name, err: classifyGceError(e) }, "could not look at or delete a pool VM whose take failed; the reaper will"),
    );
    if (signal.aborted) throw err;
    return undefined;
  }
  // The take is done: the VM is this job's, and only from here may the job's work go to it.
  try {
    const recordedHostKey = hostKeyFromLabel((instance.labels ?? {})[LABEL.hostKey]);
    const { current, ready } =
      recordedHostKey && !ctx.externalIp
        ? await probedWhileWaking(ctx, zone, instance, waking, recordedHostKey, deadline, signal)
        : await probedOnceAwake(ctx, zone, instance, waking, recordedHostKey, deadline, signal);
    ctx.log?.info({ jobId: job.jobId, vm: name, zone }, "took a VM from the warm pool");
    return {
      taken: { zone, instance: current, ready: { ...ready, meta: { ...ready.meta, fromPool: "true" } } },
      resumed: waking.then(
        () => undefined,
        () => undefined,
      ),
      // The resume's operation, if still pending, is no longer waited for: SSH showed the VM's key.
      letGo: () => letGo.abort(new Error("the VM answered SSH")),
    };
  } catch (err) {
    letGo.abort(err);
    ctx.log?.warn({ jobId: job.jobId, vm: name, err: err instanceof Error ? err.message : String(err) }, "pool VM did not resume; deleting it");
    await ctx.deleteAndWait(zone, name).catch(() => undefined);
    if (signal.aborted) throw err;
    return undefined;
  }
}

/**
 * A hedged take's other VM, up and checked but not needed: parked again the pool's way once its
 * resume is done, then its pool labels put back (this job's taken off) with the fingerprint read
 * after the park, so it is offered to jobs only once it is parked. Deleted if any of that fails.
 */
async function parkAgain(ctx: PoolTakeContext, job: JobSpec, attempt: Attempt, poolLabels: Record<string, string>): Promise<void> {
  const { zone, instance } = attempt.taken;
  const name = instance.name ?? "";
  try {
    await attempt.resumed;
    const park = await ctx.retry(() => (ctx.parked === "SUSPENDED" ? ctx.compute.suspendInstance(zone, name) : ctx.compute.stopInstance(zone, name)));
    await ctx.waitFor(zone, park);
    const parked = await ctx.retry(() => ctx.compute.getInstance(zone, name));
    if (!parked) return;
    if (String(parked.status) !== ctx.parked) throw new Error(`it is ${String(parked.status)} after its park, not ${ctx.parked}`);
    await ctx.waitFor(zone, await ctx.retry(() => ctx.compute.setLabels(zone, name, poolLabels, parked.labelFingerprint ?? "")));
    ctx.log?.info({ jobId: job.jobId, vm: name, zone }, "hedged take's other VM parked again");
  } catch (err) {
    ctx.log?.warn(
      { jobId: job.jobId, vm: name, err: err instanceof Error ? err.message : String(err) },
      "could not park a hedged take's other VM again; deleting it",
    );
    await ctx
      .deleteAndWait(zone, name)
      .catch((e: unknown) =>
        ctx.log?.error({ jobId: job.jobId, vm: name, err: classifyGceError(e) }, "could not delete a hedged take's other VM; the reaper will"),
      );
  }
}

/**
 * A take GCE accepted after the job already had its VM: nothing was done to the VM, so once the
 * take's operation is done its pool labels go back (a failed operation changed nothing). Deleted
 * if that fails, as releaseUntaken would: it carries this job's labels.
 */
async function putBack(ctx: PoolTakeContext, job: JobSpec, zone: string, name: string, take: string, poolLabels: Record<string, string>): Promise<void> {
  try {
    await ctx.waitFor(zone, take);
  } catch {
    return;
  }
  try {
    const now = await ctx.retry(() => ctx.compute.getInstance(zone, name));
    if (!now) return;
    await ctx.waitFor(zone, await ctx.retry(() => ctx.compute.setLabels(zone, name, poolLabels, now.labelFingerprint ?? "")));
  } catch (err) {
    ctx.log?.warn(
      { jobId: job.jobId, vm: name, err: err instanceof Error ? err.message : String(err) },
      "could not put a pool VM taken too late back; deleting it",
    );
    await ctx.deleteAndWait(zone, name).catch(() => undefined);
  }
}

/**
 * SSH is probed while the resume's operation is still pending, not after it: GCE reports the
 * operation DONE some time after the VM is RUNNING, and a resumed VM's sshd was running when it was
 * suspended, so it answers as soon as the network is back. The probe is pinned to the host key the
 * VM showed when it was booted for the pool, and the address is the internal one it was listed with
 * (kept for its life, suspended or not), so an answer can only come from this VM. A resume that
 * fails, the VM not on its way up, ends the probing.
 */
async function probedWhileWaking(
  ctx: PoolTakeContext,
  zone: string,
  instance: GceInstance,
  waking: Promise<GceInstance | undefined>,
  recordedHostKey: string,
  deadline: number,
  signal: AbortSignal,
): Promise<{ current: GceInstance; ready: Worker }> {
  const current = { ...instance, status: "RUNNING" };
  const failed = new AbortController();
  const probing = ctx.awaitReady(zone, current, deadline, AbortSignal.any([signal, failed.signal]), { ...RESUMED, recordedHostKey });
  const resumeFailed = waking.then(
    () => new Promise<never>(() => undefined),
    (err: unknown) => {
      failed.abort(err);
      throw err;
    },
  );
  // Whichever loses is read by nobody; never an unhandled rejection.
  probing.catch(() => undefined);
  resumeFailed.catch(() => undefined);
  return { current, ready: await Promise.race([probing, resumeFailed]) };
}

/**
 * SSH is probed once the resume's operation is done: the VM is reached on an ephemeral external
 * address, which a resume may change, so it is read then; or it was parked before host keys were
 * recorded, and is checked against its guest attributes, which it publishes once it is up.
 */
async function probedOnceAwake(
  ctx: PoolTakeContext,
  zone: string,
  instance: GceInstance,
  waking: Promise<GceInstance | undefined>,
  recordedHostKey: string | undefined,
  deadline: number,
  signal: AbortSignal,
): Promise<{ current: GceInstance; ready: Worker }> {
  const name = instance.name ?? "";
  const awake = await waking;
  const current = awake ?? (ctx.externalIp ? await ctx.retry(() => ctx.compute.getInstance(zone, name), signal) : { ...instance, status: "RUNNING" });
  if (!current) throw new Error(`pool VM ${name} disappeared while resuming`);
  const ready = await ctx.awaitReady(zone, current, deadline, signal, { ...RESUMED, ...(recordedHostKey ? { recordedHostKey } : {}) });
  return { current, ready };
}

/**
 * Resumes (or starts) the VM. `asked` settles (never rejects) once GCE has answered the call.
 * `waking` resolves when the operation is done (undefined: the VM is RUNNING), or with the VM as
 * it is when the resume was refused or failed because it is already on its way up: GCE resumes
 * only a SUSPENDED VM, so of two controllers' resumes the second is refused, whichever went first.
 */
function wake(ctx: PoolTakeContext, zone: string, name: string, signal: AbortSignal): { asked: Promise<void>; waking: Promise<GceInstance | undefined> } {
  const call = ctx.retry(() => (ctx.parked === "SUSPENDED" ? ctx.compute.resumeInstance(zone, name) : ctx.compute.startInstance(zone, name)), signal);
  const waking = (async () => {
    try {
      await ctx.waitFor(zone, await call, signal);
      return undefined;
    } catch (err) {
      if (signal.aborted) throw err;
      // Decided by the VM's status, not the error: GCE does not document how it refuses the resume
      // of a VM that is not SUSPENDED (an error answer, or an operation that fails).
      const current = await ctx.retry(() => ctx.compute.getInstance(zone, name), signal);
      if (!current || !WAKING.has(String(current.status))) throw err;
      ctx.log?.info(
        { vm: name, zone, status: current.status, err: classifyGceError(err).code },
        "pool VM already on its way up (another resume went first); waiting for it",
      );
      return current;
    }
  })();
  return {
    asked: call.then(
      () => undefined,
      () => undefined,
    ),
    waking,
  };
}

/**
 * After a take that did not succeed (or whose outcome is unknown): the VM is left alone while it is
 * another job's (that job's controller resumes it anyway), marked by the reaper (which deletes it),
 * or still parked (nothing happened to it), and deleted otherwise: it carries this job's labels,
 * or it was resumed and no job owns it.
 */
async function releaseUntaken(ctx: PoolTakeContext, job: JobSpec, zone: string, name: string): Promise<void> {
  const now = await ctx.retry(() => ctx.compute.getInstance(zone, name));
  if (!now) return;
  const labels = now.labels ?? {};
  const owner = labels[LABEL.job];
  if (owner !== undefined && owner !== labelValue(job.jobId)) return;
  if (labels[LABEL.deleting] !== undefined) return;
  if (owner === undefined && String(now.status) === ctx.parked) return;
  ctx.log?.warn({ jobId: job.jobId, vm: name, zone, status: now.status }, "deleting a pool VM whose take failed after it was resumed");
  await ctx.deleteAndWait(zone, name);
}
