/**
 * A circuit breaker for one worker host, so one dead machine does not eat the queue:
 *
 *   closed ──(failureThreshold failures in a row)──► open ──(coolDownMs passes)──► half-open
 *     ▲                                                ▲                              │
 *     └──────────────(the one trial succeeds)──────────┴──(the one trial fails)───────┘
 *
 * While open the host is skipped without a connection attempt. Once the cool-down has passed,
 * exactly one operation is let through as a trial; others keep skipping the host until it ends.
 * The clock is a parameter so tests move time instead of sleeping.
 */
export type CircuitState = "closed" | "open" | "half-open";

export interface CircuitBreakerOptions {
  failureThreshold: number;
  coolDownMs: number;
  now: () => number;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | null = null;
  private trialInFlight = false;
  private lastError: string | null = null;

  constructor(private readonly options: CircuitBreakerOptions) {}

  get state(): CircuitState {
    if (this.openedAt === null) return "closed";
    return this.options.now() - this.openedAt >= this.options.coolDownMs ? "half-open" : "open";
  }

  /** What the last failure said, for health reports; cleared by a success. */
  get lastFailure(): string | null {
    return this.lastError;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  /**
   * Records the outcome of an operation that did not ask first (work on something already on the
   * host, which must be tried whatever the circuit says): a success closes the circuit, a failure
   * counts like any other.
   */
  readonly record = (outcome: { ok: true } | { ok: false; error: string }): void => {
    if (outcome.ok) {
      this.failures = 0;
      this.openedAt = null;
      this.lastError = null;
      return;
    }
    this.failures += 1;
    this.lastError = outcome.error;
    if (this.failures >= this.options.failureThreshold) this.openedAt = this.options.now();
  };

  /**
   * Asks to use the host. Returns a function to call with the outcome, or null when the host must
   * be skipped (open, or half-open with its one trial already under way).
   */
  tryAcquire(): ((outcome: { ok: true } | { ok: false; error: string }) => void) | null {
    const state = this.state;
    if (state === "open") return null;
    const trial = state === "half-open";
    if (trial) {
      if (this.trialInFlight) return null;
      this.trialInFlight = true;
    }
    let settled = false;
    return (outcome) => {
      if (settled) return;
      settled = true;
      if (trial) this.trialInFlight = false;
      if (outcome.ok) {
        this.failures = 0;
        this.openedAt = null;
        this.lastError = null;
        return;
      }
      this.failures += 1;
      this.lastError = outcome.error;
      // A failed trial re-opens at once; a closed circuit opens after enough failures in a row.
      if (trial || this.failures >= this.options.failureThreshold) this.openedAt = this.options.now();
    };
  }
}
