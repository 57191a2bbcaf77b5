import type { Logger } from "pino";
import type { Backend } from "../backends/types.js";
import type { ControllerConfig } from "../config/env.js";
import type { GitHubAccess } from "../github/types.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Redactor } from "../redact/redactor.js";
import type { JobStore } from "../store/job-store.js";
import type { RequestStore } from "../store/request-store.js";
import type { OutboxStore } from "../store/outbox-store.js";
import type { JobLog } from "../logs/job-log.js";
import type { Ledger } from "../cost/ledger.js";
import type { PriceTable } from "../cost/price-table.js";
import type { Sealer } from "../secrets/seal.js";
import type { Job } from "../jobs/types.js";

/**
 * Points in a job's life between one effect and the next, where a controller may die: after the
 * admission is written but before its 👀, after a refusal is written but before its comment, after
 * a command's answer is written but before its reply, after the worker exists but before it is
 * recorded, after the token is minted and kept (sealed), while the agent runs, after the worker
 * pushed, once reporting has started.
 */
export type PipelineStep = "admitted" | "refused" | "answered" | "worker-created" | "token-minted" | "agent-running" | "pushed" | "reporting";

/** Everything the job pipeline touches, passed in explicitly (tests build their own). */
export interface PipelineDeps {
  store: JobStore;
  requests: RequestStore;
  /** GitHub effects to deliver exactly once, whoever dies when (src/pipeline/deliver-outbox.ts). */
  outbox: OutboxStore;
  /** The full redacted log of every job (the log page reads it; the check run shows a tail). */
  logs: JobLog;
  /** Cost records and budget reservations. */
  ledger: Ledger;
  /** GCE prices: the bundled table, or PRICES_FILE's. */
  priceTable: PriceTable;
  github: GitHubAccess;
  backends: ReadonlyMap<string, Backend>;
  config: ControllerConfig;
  redactor: Redactor;
  log: Logger;
  metrics: Metrics;
  now: () => number;
  /** This process's name on leases. */
  owner: string;
  /**
   * Seconds in a "minute" of job limits. 60 in production; tests shrink it so a job limited to
   * 2 minutes times out in 2 seconds instead of sleeping through the real thing.
   */
  secondsPerMinute: number;
  /** Seals the worker token kept in the store, so a controller restarted after a crash can revoke it. */
  sealer: Sealer;
  /**
   * Told each PipelineStep as the job passes it. Nothing listens in production; the crash-matrix
   * test's controller (test/support/crash-controller.ts) kills itself here.
   */
  onStep?: (step: PipelineStep, job: Job | null) => void | Promise<void>;
  /** Asked before each scheduler pass: while webhook deliveries arrive, the pass waits (src/ingress/webhook-priority.ts). */
  turn?: () => Promise<void> | undefined;
}
