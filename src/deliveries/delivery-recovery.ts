import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { GitHubAccess } from "../github/types.js";
import type { JobStore } from "../store/job-store.js";
import { DeliveryAskStore } from "../store/delivery-asks.js";
import { ADVISORY_LOCKS, runExclusively } from "../store/advisory-lock.js";
import { listAppDeliveries } from "./list-app-deliveries.js";
import { DEFAULT_REDELIVER_LIMITS, errorSummary, redeliverMissed, type RedeliverLimits, type RedeliverReport } from "./redeliver-missed.js";
import { DEFAULT_SCAN_LIMITS, scanLabelledIssues, type ScanLimits, type ScanReport } from "./scan-labelled-issues.js";

/**
 * How far back the deliveries list is read. GitHub keeps deliveries for about three days and
 * redelivers only those; a little less keeps a pass from asking for one that expires meanwhile.
 */
export const DEFAULT_WINDOW_MS = 70 * 3600_000;

export interface DeliveryRecoveryOptions {
  /** The store's database: its advisory lock keeps passes of several replicas apart. */
  db: Kysely<any>;
  store: JobStore;
  github: GitHubAccess;
  triggerLabel: string;
  appId: number;
  defaultBackend: string;
  log: Logger;
  now?: () => number;
  /** Tells the scheduler there is work (the label scan records jobs itself). */
  wake(): void;
  /** Milliseconds between passes once started; the first pass runs at start. */
  intervalMs: number;
  /** A label older than this is not turned into a job by the scan. */
  labelScanMaxAgeMs: number;
  windowMs?: number;
  /** Pages of 100 deliveries read per pass. */
  maxListPages?: number;
  redeliverLimits?: Partial<RedeliverLimits>;
  scanLimits?: Partial<Omit<ScanLimits, "maxAgeMs">>;
  /** A scan that could not finish (a cap, a failed call) is tried again no sooner than this. */
  scanRetryMs?: number;
}

export type RecoveryReport =
  | { ran: false }
  | {
      ran: true;
      pages: number;
      /** The listing stopped at the page cap before the window's start. */
      truncated: boolean;
      coveredFrom: number;
      redeliver: RedeliverReport;
      /** Present when the pass scanned labelled issues (a gap in what the list covered). */
      scan?: ScanReport;
      coveredUntil: number | undefined;
    };

/**
 * Brings back what GitHub tried to deliver while this controller could not take it (down, 5xx,
 * unreachable): GitHub never redelivers by itself. Each pass lists the App's recent deliveries and
 * asks GitHub to redeliver the missed ones (src/deliveries/redeliver-missed.ts); when what the
 * list covers does not reach back to where the last complete pass ended (a first start, an outage
 * longer than GitHub keeps deliveries), it also scans open labelled issues that never had a job
 * (src/deliveries/scan-labelled-issues.ts). One replica at a time (an advisory lock); `tick()`
 * runs one pass now, so tests never sleep.
 */
export class DeliveryRecovery {
  private readonly asks: DeliveryAskStore;
  private readonly now: () => number;
  private current: Promise<RecoveryReport> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastScanAt: number | undefined;

  constructor(private readonly options: DeliveryRecoveryOptions) {
    this.now = options.now ?? Date.now;
    this.asks = new DeliveryAskStore(options.db, this.now);
  }

  /** One pass now; a tick asked for while one runs in this process returns that one's report. */
  tick(): Promise<RecoveryReport> {
    if (this.current) return this.current;
    const pass = runExclusively(this.options.db, ADVISORY_LOCKS.deliveryRecovery, () => this.pass())
      .then((outcome): RecoveryReport => {
        if (!outcome.ran) this.options.log.debug("another replica is recovering deliveries; this pass is skipped");
        return outcome.ran ? outcome.value : { ran: false };
      })
      .finally(() => {
        this.current = undefined;
      });
    this.current = pass;
    return pass;
  }

  /** Runs a pass now (a restart is when deliveries were most likely missed), then every `intervalMs`. */
  start(): void {
    if (this.timer || this.options.intervalMs <= 0) return;
    // The summary, not the error: an Octokit error carries its request, which was signed with the App's JWT.
    const run = () =>
      void this.tick().catch((err: unknown) => this.options.log.error({ err: errorSummary(err) }, "delivery recovery pass failed; the next one tries again"));
    run();
    this.timer = setInterval(run, this.options.intervalMs);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.current?.catch(() => undefined);
  }

  private async pass(): Promise<RecoveryReport> {
    const { options } = this;
    const started = this.now();
    const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    const log = options.log;
    const app = await options.github.asApp();
    const listing = await listAppDeliveries(app, { since: started - windowMs, maxPages: options.maxListPages ?? 10, now: started });
    const redeliver = await redeliverMissed(
      {
        asks: this.asks,
        app,
        rules: { triggerLabel: options.triggerLabel, appId: options.appId },
        log,
        now: this.now,
        limits: { ...DEFAULT_REDELIVER_LIMITS, ...options.redeliverLimits },
      },
      listing,
    );

    // Until when every delivery has been dealt with. If that does not reach the start of what the
    // list covers now, deliveries between the two are gone from the list: scan for their labels.
    const coveredUntil = await this.asks.coveredUntil();
    const gap = coveredUntil === undefined || coveredUntil < listing.coveredFrom;
    let scan: ScanReport | undefined;
    if (gap && (this.lastScanAt === undefined || started - this.lastScanAt >= (options.scanRetryMs ?? 3600_000))) {
      this.lastScanAt = started;
      scan = await scanLabelledIssues(
        {
          github: options.github,
          asks: this.asks,
          store: options.store,
          triggerLabel: options.triggerLabel,
          defaultBackend: options.defaultBackend,
          log,
          now: this.now,
          limits: { ...DEFAULT_SCAN_LIMITS, ...options.scanLimits, maxAgeMs: options.labelScanMaxAgeMs },
          wake: options.wake,
        },
        listing.coveredFrom,
      );
    }
    let newCoveredUntil = coveredUntil;
    if (!gap || scan?.complete) {
      // Up to the oldest delivery left undone: should it fall out of the list, the gap shows.
      newCoveredUntil = redeliver.oldestUndone !== undefined ? redeliver.oldestUndone - 1 : started;
      await this.asks.setCoveredUntil(newCoveredUntil);
    }
    await this.asks.prune(started - 2 * windowMs);

    log.info(
      {
        listed: redeliver.listed,
        pages: listing.pages,
        truncated: listing.truncated,
        handled: redeliver.handled,
        reached: redeliver.reached,
        inspected: redeliver.inspected,
        redelivered: redeliver.redelivered,
        ignored: redeliver.ignored,
        pending: redeliver.pending,
        gaveUp: redeliver.gaveUp,
        failed: redeliver.failed,
        deferred: redeliver.deferred,
        scanned: scan?.scanned ?? 0,
        recorded: scan?.recorded ?? 0,
        ...(scan ? { scan } : {}),
        gap,
      },
      "delivery recovery pass",
    );
    return {
      ran: true,
      pages: listing.pages,
      truncated: listing.truncated,
      coveredFrom: listing.coveredFrom,
      redeliver,
      ...(scan ? { scan } : {}),
      coveredUntil: newCoveredUntil,
    };
  }
}
