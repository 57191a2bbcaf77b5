/**
 * What the webhook path is doing, in memory every thread can read: deliveries being handled now,
 * and when the last signed one was answered. The ingress thread writes it; job work's priority
 * (webhook-priority.ts) reads it on the main thread, with no message and no wait. Times are
 * milliseconds since the epoch at microsecond precision (`performance.timeOrigin` differs between
 * threads, so `performance.now()` alone would not compare).
 */
export class WebhookActivity {
  /** Hand this to the other thread (workerData) and build a WebhookActivity over it there. */
  readonly buffer: SharedArrayBuffer;
  private readonly inFlightCount: Int32Array;
  private readonly lastSignedMicros: BigInt64Array;

  constructor(
    buffer?: SharedArrayBuffer,
    private readonly now: () => number = epochMs,
  ) {
    this.buffer = buffer ?? new SharedArrayBuffer(16);
    this.inFlightCount = new Int32Array(this.buffer, 0, 1);
    this.lastSignedMicros = new BigInt64Array(this.buffer, 8, 1);
    if (!buffer) Atomics.store(this.lastSignedMicros, 0, NEVER);
  }

  /** A delivery's body has arrived and is being handled. */
  begin(): void {
    Atomics.add(this.inFlightCount, 0, 1);
  }

  /** That delivery was answered; `signed` false (a refused request) leaves the last-signed time alone. */
  end(signed: boolean): void {
    Atomics.sub(this.inFlightCount, 0, 1);
    if (signed) Atomics.store(this.lastSignedMicros, 0, BigInt(Math.round(this.now() * 1000)));
  }

  /**
   * No delivery is in hand: the thread that had some died before answering them. Without this the
   * count stayed up, and job work waited behind deliveries that no longer exist (a trickle a 5 ms).
   */
  clearInFlight(): void {
    Atomics.store(this.inFlightCount, 0, 0);
  }

  inFlight(): number {
    return Math.max(0, Atomics.load(this.inFlightCount, 0));
  }

  /** When the last signed delivery was answered, on `now`'s clock; -Infinity before the first. */
  lastSignedEnd(): number {
    const micros = Atomics.load(this.lastSignedMicros, 0);
    return micros === NEVER ? Number.NEGATIVE_INFINITY : Number(micros) / 1000;
  }
}

const NEVER = -(2n ** 63n);

/** The same clock in every thread of the process. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}
