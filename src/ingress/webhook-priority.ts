import { WebhookActivity, epochMs } from "./webhook-activity.js";

/**
 * The webhook path goes first. The controller runs deliveries and jobs on one event loop; under a
 * burst the job stage (intake, runs, reports: GitHub calls and the store writes after each answer)
 * keeps the loop busy, and a delivery's request waited behind it (p99 3.5× bare Probot's at 100
 * deliveries a second, a tenth of its rate flat out: bench/ingest.ts). GitHub waits 10 s for an
 * answer and never redelivers by itself; a job can start a second later. So the job stage asks
 * here before each GitHub call and each scheduler pass, and while deliveries are arriving it waits:
 *
 * - the webhook path is *quiet* when no delivery is being handled (its body in, its answer not yet
 *   sent) and no signed one was answered in the last `quietMs` (a refused request opens no such
 *   window, and a body still arriving is not counted: neither can be a stranger's lever on jobs); then waiting work is let go one piece per turn of the event loop (a
 *   `setImmediate` each), so a delivery that arrives meanwhile is read between two pieces;
 * - while it is busy, nothing is let go, except that the oldest piece that has waited `maxWaitMs`
 *   goes, then one more every `quietMs`: under a flood that never stops, jobs still move, at a
 *   trickle (about 1,000 / quietMs calls a second), and no piece waits for ever.
 *
 * - for `recentMs` after a delivery, at most `busyCap` GitHub calls of job work are in flight
 *   (`cap()`, asked by the GitHub client's concurrency limit).
 *
 * Work already under way is not stopped; this only decides when the next piece starts. Nothing
 * waits when no delivery came in: `turn()` answers `undefined` and the caller goes on at once.
 */
export interface WebhookPriorityOptions {
  /** How long after the last delivery the webhook path counts as busy (default 5 ms). */
  quietMs?: number;
  /** The longest a piece of job work waits while deliveries keep coming (default 2,000 ms). */
  maxWaitMs?: number;
  /** For this long after a delivery, job work runs at most `busyCap` GitHub calls at once (default 100 ms). */
  recentMs?: number;
  /** See `recentMs` (default 4). */
  busyCap?: number;
  now?: () => number;
  /**
   * Where the webhook path's state is kept: shared with the ingress thread when webhooks are
   * received there (src/ingress/ingress-thread.ts), which then calls begin/end on its own copy.
   */
  activity?: WebhookActivity;
}

interface Waiter {
  since: number;
  go: () => void;
}

export class WebhookPriority {
  private readonly quietMs: number;
  private readonly maxWaitMs: number;
  private readonly recentMs: number;
  private readonly busyCap: number;
  private readonly now: () => number;
  private readonly activity: WebhookActivity;
  private readonly waiting: Waiter[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** When the last piece was let go while the webhook path was busy (the trickle's pace). */
  private lastForced = Number.NEGATIVE_INFINITY;

  constructor(options: WebhookPriorityOptions = {}) {
    this.quietMs = options.quietMs ?? 5;
    this.maxWaitMs = options.maxWaitMs ?? 2_000;
    this.recentMs = options.recentMs ?? 100;
    this.busyCap = options.busyCap ?? 4;
    this.now = options.now ?? epochMs;
    this.activity = options.activity ?? new WebhookActivity(undefined, this.now);
  }

  private get inFlight(): number {
    return this.activity.inFlight();
  }

  private get lastDelivery(): number {
    return this.activity.lastSignedEnd();
  }

  /** A delivery's body has arrived and is being handled (the ingress calls it once the body is read). */
  begin(): void {
    this.activity.begin();
  }

  /**
   * That request was answered. `signed` false (a refused request: bad signature, not JSON…) opens
   * no busy window after it: a stranger's requests must not be a lever to hold the jobs back.
   */
  end(signed = true): void {
    this.activity.end(signed);
    if (this.pending() > 0) this.arm();
  }

  /** Pieces of job work waiting for their turn (tests, metrics). */
  pending(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Where job work asks for its turn: `undefined` when nothing is in the way (go on at once, no
   * promise, no timer), else a promise that resolves when it may start.
   */
  turn(): Promise<void> | undefined {
    if (this.pending() === 0 && this.quiet(this.now())) return undefined;
    return new Promise<void>((go) => {
      this.waiting.push({ since: this.now(), go });
      this.arm();
    });
  }

  /**
   * How many GitHub calls job work may have in flight: `normal`, or `busyCap` while deliveries
   * arrive. The answers to forty calls in flight come back together and their handling (the
   * response, the store writes after it) runs back to back: a delivery that arrived meanwhile
   * waited behind all of it.
   */
  cap(normal: number): number {
    return this.now() - this.lastDelivery < this.recentMs || this.inFlight > 0 ? Math.min(normal, this.busyCap) : normal;
  }

  /** Lets every waiting piece go at once (the controller is stopping; nothing should hang on this). */
  release(): void {
    this.clear();
    while (this.pending() > 0) this.shift().go();
  }

  private quiet(at: number): boolean {
    return this.inFlight === 0 && at - this.lastDelivery >= this.quietMs;
  }

  private shift(): Waiter {
    const waiter = this.waiting[this.head++]!;
    // Compacted now and then rather than shifted each time (shift is linear in the queue's length).
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    return waiter;
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  private readonly pump = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    if (this.pending() === 0) return;
    const at = this.now();
    if (this.quiet(at)) {
      this.shift().go();
      // One piece a turn: the poll phase between two pieces reads a delivery that arrived.
      if (this.pending() > 0) this.immediate = setImmediate(this.pump);
      return;
    }
    const oldest = this.waiting[this.head]!;
    if (at - oldest.since >= this.maxWaitMs && at - this.lastForced >= this.quietMs) {
      this.lastForced = at;
      this.shift().go();
    }
    this.arm();
  };

  private arm(): void {
    if (this.timer || this.immediate || this.pending() === 0) return;
    const at = this.now();
    if (this.quiet(at)) {
      this.immediate = setImmediate(this.pump);
      return;
    }
    const untilQuiet = this.inFlight > 0 ? this.quietMs : this.lastDelivery + this.quietMs - at;
    const untilForced = this.waiting[this.head]!.since + this.maxWaitMs - at;
    this.timer = setTimeout(this.pump, Math.max(1, Math.ceil(Math.min(untilQuiet, Math.max(untilForced, this.quietMs)))));
    this.timer.unref?.();
  }
}
