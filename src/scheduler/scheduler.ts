import type { PipelineDeps } from "../pipeline/deps.js";
import { intakeJob } from "../pipeline/intake-job.js";
import { runJob } from "../pipeline/run-job.js";
import { publishWaiting, routeJob } from "../pipeline/route-job.js";
import { handedBack } from "../pipeline/hand-back.js";
import { recoverJob } from "../pipeline/recover-job.js";
import { answerAndFinish } from "../pipeline/answer-request.js";
import { deliverOutbox } from "../pipeline/deliver-outbox.js";
import { jobEndedKeys } from "../store/outbox-store.js";
import type { Job } from "../jobs/types.js";
import { CancelRequest } from "../pipeline/cancel-request.js";
import { HandBack } from "../pipeline/hand-back.js";
import { LeaseLostError } from "../store/job-store.js";

/** A job whose every backend is full, down or at its cap is looked at again after this long. */
const WAIT_FOR_CAPACITY_MS = 5_000;
const WAIT = Symbol("wait for capacity");

/**
 * How many received deliveries are taken in at once, over all passes; GitHub's secondary limits
 * pace the rest. A bound on what is in flight, not on what one pass claims: under a burst, an
 * unbounded intake stage filled the event loop with thousands of pending GitHub calls and the
 * webhook path waited behind them (seconds per delivery); bounded, it keeps pace with GitHub
 * and leaves the event loop to the deliveries.
 */
const INTAKE_BATCH = 20;

/**
 * Claims jobs and drives them: intake for new deliveries, the run lifecycle for admitted jobs
 * (at most `maxConcurrentJobs` at once), recovery for jobs whose lease expired. `tick()` does one
 * pass and returns once the work it claimed has started; `drain()` waits for it to finish, so
 * tests drive the scheduler without sleeping.
 */
export class Scheduler {
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly running = new Map<string, AbortController>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private againFull = false;
  /** Set by a wake from outside (a webhook may have recorded a command); cleared when requests are claimed. */
  private requestsDue = true;
  /** Jobs whose intake is under way in this process (bounded by INTAKE_BATCH). */
  private readonly intaking = new Set<string>();
  private stopped = false;
  /** Set by shutdown(): from then on a pass claims nothing (tests may still tick() after stop()). */
  private shuttingDown = false;

  constructor(private readonly deps: PipelineDeps) {}

  /** Starts ticking every `schedulerIntervalMs`, and immediately whenever `wake()` is called. */
  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.wake(true), this.deps.config.schedulerIntervalMs);
    this.timer.unref?.();
    this.wake(true);
  }

  /**
   * Asks for a pass as soon as possible (a webhook just recorded a job, a phase finished). Such a
   * pass leaves out the look for expired leases, which only the timer's passes (`full`) make:
   * under a burst wakes come hundreds a second, and a lease expires on the scale of a minute.
   */
  wake(full = false): void {
    this.requestsDue = true;
    this.nudge(full);
  }

  /** A pass for work this process freed room for (a phase ended): no command can have arrived by it. */
  private nudge(full = false): void {
    if (this.stopped || !this.timer) return;
    void this.tick(full).catch((err) => this.deps.log.error({ err }, "scheduler pass failed"));
  }

  /** One pass (tests call it directly; `full` by default, so it also recovers expired leases). */
  async tick(full = true): Promise<void> {
    if (this.ticking) {
      this.again = true;
      this.againFull ||= full;
      return this.ticking;
    }
    this.ticking = this.pass(full).finally(() => {
      this.ticking = undefined;
    });
    await this.ticking;
    if (this.again) {
      const nextFull = this.againFull;
      this.again = false;
      this.againFull = false;
      await this.tick(nextFull);
    }
  }

  /** Waits until every job this process has claimed is done with its current phase. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  /**
   * The SIGTERM path. Stops claiming; runs are stopped at their next safe point and their jobs go
   * back to the queue (HandBack: worker destroyed, token revoked, lease released, so another
   * replica or the next start takes them at once); other phases (intake, answers, reporting,
   * recovery) finish. After `graceMs`, whatever is still under way has its lease released anyway:
   * the process is about to exit, and whoever claims the job next recovers it (destroys a worker
   * left behind, revokes its token) without waiting for the lease to run out.
   */
  async shutdown(graceMs: number): Promise<{ handedBack: string[]; unfinished: string[] }> {
    this.stopped = true;
    this.shuttingDown = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // A pass under way returns once what it claimed has started; those runs are handed back too.
    await this.ticking?.catch(() => undefined);
    const handedBack = [...this.running.keys()];
    for (const c of this.running.values()) c.abort(new HandBack());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.drain(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    const unfinished = [...this.inFlight.keys()];
    for (const id of unfinished) await this.deps.store.releaseLease(id, this.deps.owner).catch(() => undefined);
    return { handedBack, unfinished };
  }

  /** Stops claiming; running jobs go on unless `abort` is set, then waits for them. */
  async stop(options: { abort?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (options.abort) for (const c of this.running.values()) c.abort(new Error("controller stopping"));
    await this.ticking;
    await this.drain();
  }

  /** Stops a job this process is running (its worker is destroyed by the runner's teardown). */
  cancel(jobId: string, reason: CancelRequest): boolean {
    const controller = this.running.get(jobId);
    if (!controller) return false;
    controller.abort(reason);
    return true;
  }

  /**
   * Delivers now what ending a job outside a run wrote to the outbox (the reaper ends jobs): its
   * worker billed, its final status comment and check run, its token revoked. The sweep would, a pass later.
   */
  async publishFinal(job: Job): Promise<void> {
    await deliverOutbox(this.deps, jobEndedKeys(job.id));
  }

  get activeJobs(): number {
    return this.running.size;
  }

  private async pass(full: boolean): Promise<void> {
    const { store, owner, config } = this.deps;
    const leaseMs = config.leaseSeconds * 1000;

    // Deliveries arriving go first; the pass claims once they leave the event loop room.
    const waitForTurn = this.deps.turn?.();
    if (waitForTurn) await waitForTurn;
    // Each claim looks again whether a shutdown began meanwhile: a stopping process takes on
    // nothing new.
    if (this.shuttingDown) return;
    if (full) {
      // What a process that died (this one before a restart, or another replica) left in the
      // outbox: the 👀, refusals, replies and final statuses it had written and not delivered.
      await deliverOutbox(this.deps, "sweep");
      if (this.shuttingDown) return;
      for (const job of await store.claim(["provisioning", "running", "reporting"], owner, leaseMs, 10)) {
        // Runs on in the background: track() logs its failure and never rejects; shutdown waits on inFlight.
        void this.track(job.id, () => recoverJob(this.fenced(job), job), undefined, job.leaseEpoch);
      }
    }
    if (this.shuttingDown) return;
    const room = INTAKE_BATCH - this.intaking.size;
    for (const job of room > 0 ? await store.claim(["received"], owner, leaseMs, room) : []) {
      this.intaking.add(job.id);
      void this.track(
        job.id,
        () => intakeJob(this.fenced(job), job),
        () => this.intaking.delete(job.id),
        job.leaseEpoch,
      );
    }
    // Commands are answered before new work is claimed, so a `stop` that arrives with a queued
    // job takes it off the queue instead of racing its start.
    if (this.shuttingDown) return;
    const answerDeps = { ...this.deps, cancelRunning: (id: string, reason: CancelRequest) => this.cancel(id, reason) };
    const answering: Promise<unknown>[] = [];
    const lookForRequests = full || this.requestsDue;
    this.requestsDue = false;
    const requests = lookForRequests ? await this.deps.requests.claim(owner, leaseMs, INTAKE_BATCH) : [];
    // A full batch may have left more behind: look again on the next pass.
    if (requests.length === INTAKE_BATCH) this.requestsDue = true;
    for (const req of requests) {
      answering.push(this.track(req.id, () => answerAndFinish(answerDeps, req), undefined, null));
    }
    await Promise.allSettled(answering);
    if (this.shuttingDown) return;
    const free = config.maxConcurrentJobs - this.running.size;
    for (const job of await store.claim(["queued"], owner, leaseMs, free)) {
      const controller = new AbortController();
      this.running.set(job.id, controller);
      void this.track(
        job.id,
        async () => {
          const deps = this.fenced(job);
          // Where it runs: its own backend, or the next in BACKEND_ORDER when that one is full, down or at its cap.
          const routed = await routeJob(deps, job);
          if ("waiting" in routed) {
            if (routed.noteChanged)
              await publishWaiting(deps, routed.job).catch((err) => this.deps.log.warn({ err, jobId: job.id }, "could not show why the job waits"));
            await store.renewLease(job.id, owner, WAIT_FOR_CAPACITY_MS, job.leaseEpoch);
            return WAIT;
          }
          const ran = await runJob(deps, routed.job, controller.signal);
          // Its backend's cap was taken by a job routed at the same moment: it waits like one routing kept.
          if (ran.state === "queued" && ran.options.waiting !== undefined && !handedBack(controller.signal)) {
            await store.renewLease(job.id, owner, WAIT_FOR_CAPACITY_MS, job.leaseEpoch);
            return WAIT;
          }
          return ran;
        },
        () => this.running.delete(job.id),
        job.leaseEpoch,
      );
    }
  }

  /**
   * The pipeline's dependencies for one claimed job: its store view fenced on this claim's lease,
   * so a phase that outlived its lease (a stalled process whose job another pass took) writes
   * nothing over the new holder's work.
   */
  private fenced(job: Job): PipelineDeps {
    return { ...this.deps, store: this.deps.store.fencedTo(job) };
  }

  /**
   * Runs one claimed phase. `epoch` is the job's lease epoch of this claim; null for requests,
   * whose lease ends when they are answered.
   */
  private track(id: string, work: () => Promise<unknown>, done?: () => void, epoch: number | null = null): Promise<unknown> {
    const { store, owner, config, log } = this.deps;
    const isJob = epoch !== null;
    const heartbeat = setInterval(
      () => {
        if (!isJob) return;
        const running = this.running.get(id);
        void store.renewLease(id, owner, config.leaseSeconds * 1000, epoch).then(
          (held) => {
            // Taken over (this process stalled past its lease): stop the run; its writes are refused anyway.
            if (!held && running && !running.signal.aborted) {
              log.error({ jobId: id }, "lost the lease on a running job; stopping it and leaving the job to its new holder");
              running.abort(new LeaseLostError(`job ${id}: the lease was taken over`));
            }
          },
          (err) => log.warn({ err, jobId: id }, "lease renewal failed"),
        );
        // A stop asked for somewhere else (another replica's webhook, the ops CLI) is written on
        // the job; the process running it notices here and stops its worker.
        if (running && !running.signal.aborted) {
          void store.get(id).then(
            (job) => {
              if (job?.cancelRequestedBy) running.abort(new CancelRequest(job.cancelRequestedBy));
            },
            () => undefined,
          );
        }
      },
      Math.max(1000, (config.leaseSeconds * 1000) / 3),
    );
    heartbeat.unref?.();
    let ok = false;
    let waiting = false;
    const p = work()
      .then((result) => {
        ok = result !== WAIT;
        waiting = result === WAIT;
      })
      .catch((err) => log.error({ err, id }, "phase failed; it is retried when its lease expires"))
      .finally(async () => {
        clearInterval(heartbeat);
        done?.();
        // A failed phase keeps its lease until it expires: that is the retry back-off.
        if (ok && isJob) await store.releaseLease(id, owner, epoch).catch(() => undefined);
        this.inFlight.delete(id);
        // Finishing frees a slot or admits a job: look again at once (not for a job that waits
        // for capacity: its short lease is the pause before it is tried again).
        if (!waiting && !this.stopped && this.timer) this.nudge();
      })
      // So that it never rejects: callers leave it running in the background.
      .catch((err) => log.error({ err, id }, "bookkeeping after a phase failed"));
    this.inFlight.set(id, p);
    return p;
  }
}
