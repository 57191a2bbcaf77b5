/** What the main thread hands the ingress thread at its start (workerData). */
export interface IngressThreadData {
  host: string;
  port: number;
  requestTimeoutMs: number;
  webhookPath: string;
  webhookSecret: string;
  spillDir: string;
  /** The store the main thread opened (and migrated): the thread opens a second connection to it. */
  dataDir: string;
  databaseUrl?: string;
  logLevel: string;
  triggerLabel: string;
  appId: number;
  defaultBackend: string;
  /** WebhookActivity's memory, shared with the main thread's job-work priority. */
  activity: SharedArrayBuffer;
  /** Where every request that is not a webhook is passed on: the main thread's own HTTP server. */
  mainPort: number;
}

/** A delivery counted by what its handler did, as `agent_work_webhook_deliveries_total` counts it. */
export type DeliveryCount = [event: string, outcome: string, n: number];

/** Thread → main thread. */
export type IngressMessage =
  | { type: "listening"; port: number }
  | { type: "failed"; message: string }
  /** Log lines (not yet redacted: the main thread's redactor does that), counts, and whether a job or request was recorded. */
  | { type: "batch"; lines: string[]; counts: DeliveryCount[]; wake: boolean }
  | { type: "stopped" };

/** Main thread → thread. */
export type IngressCommand = { type: "stop" };
