import { reap, type ReapDeps, type ReapReport } from "./reap.js";

export interface ReaperOptions extends Omit<ReapDeps, "dryRun"> {
  /** Milliseconds between passes when started (default 60 000). */
  intervalMs?: number;
}

/**
 * The reaper as a loop: `start()` runs a pass every `intervalMs`; `tick()` runs one now (tests and
 * the ops CLI call it directly, so nothing sleeps). Passes never overlap in one process: a tick
 * asked for while one runs waits for that one and returns its report.
 */
export class Reaper {
  private current: Promise<ReapReport> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ReaperOptions) {}

  tick(options: { dryRun?: boolean } = {}): Promise<ReapReport> {
    if (this.current) return this.current;
    const pass = reap({ ...this.options, dryRun: options.dryRun ?? false }).finally(() => {
      this.current = undefined;
    });
    this.current = pass;
    return pass;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      void this.tick().catch((err: unknown) => this.options.log.error({ err }, "reaper pass failed; the next one tries again"));
    }, this.options.intervalMs ?? 60_000);
    this.timer.unref?.();
  }

  /** Stops the loop and waits for a pass under way. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.current?.catch(() => undefined);
  }
}
