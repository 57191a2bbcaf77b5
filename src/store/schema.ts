import type { Generated } from "kysely";

/** Row shapes as stored. Times are epoch milliseconds; JSON columns are text. */
export interface JobsTable {
  id: string;
  delivery_id: string;
  installation_id: number;
  repo_id: number;
  owner: string;
  repo: string;
  number: number;
  kind: string;
  trigger: string;
  requester: string;
  title: string;
  body: string;
  clone_url: string;
  default_branch: string;
  instructions: string | null;
  config_json: string | null;
  state: string;
  /** `<repo_id>#<number>` while the job is active, NULL otherwise: a unique index on it keeps one active job per issue. */
  active_key: string | null;
  priority: number;
  backend: string;
  base_sha: string | null;
  check_run_id: number | null;
  comment_id: number | null;
  pr_check_run_id: number | null;
  branch: string | null;
  head_sha: string | null;
  pr_number: number | null;
  pr_url: string | null;
  worker_json: string | null;
  result_json: string | null;
  steps_json: string;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  /** Bumped by every claim; with lease_owner it fences the holder's writes (JobStore.fencedTo). */
  lease_epoch: number;
  deadline_at: number | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  compute_seconds: number | null;
  cost_usd: number | null;
  message: string | null;
  options_json: string | null;
  trigger_comment_id: number | null;
  context_json: string | null;
  pr_head_ref: string | null;
  retry_of: string | null;
  cancel_requested_by: string | null;
  /** The worker token while it may be in use, sealed (src/secrets/seal.ts), never in clear; NULL once revoked. */
  worker_token_sealed: string | null;
}

export interface RequestsTable {
  id: string;
  delivery_id: string;
  installation_id: number;
  repo_id: number;
  owner: string;
  repo: string;
  number: number;
  kind: string;
  /** `comment` or `check_run`. */
  source: string;
  verb: string;
  sender: string;
  args_json: string;
  /** `pending` until answered, then `done`. */
  state: string;
  lease_owner: string | null;
  lease_expires_at: number | null;
  created_at: number;
  updated_at: number;
  outcome: string | null;
}

export interface JobEventsTable {
  id: Generated<number>;
  job_id: string;
  at: number;
  kind: string;
  data_json: string | null;
}

export interface JobLogsTable {
  id: Generated<number>;
  job_id: string;
  at: number;
  stream: string;
  /** Redacted before it is written: the log never holds a secret in clear. */
  line: string;
}

export interface LedgerTable {
  job_id: string;
  repo_id: number;
  repo_full_name: string;
  backend: string;
  machine_type: string | null;
  region: string | null;
  spot: number;
  disk_gb: number | null;
  disk_type: string | null;
  rate_usd_per_hour: number;
  rate_source: string;
  /** The job's ceiling, held against the budgets until the job ends. */
  reserved_usd: number;
  /** `reserved` while the job may still spend, `final` once billed. */
  state: string;
  started_at: number;
  ended_at: number | null;
  billed_seconds: number | null;
  compute_usd: number | null;
  disk_usd: number | null;
  total_usd: number | null;
  agent_usage_json: string | null;
}

/** One worker's bill: what it cost from create to delete (a job has one per start). */
export interface LedgerWorkersTable {
  job_id: string;
  worker_id: string;
  started_at: number;
  ended_at: number;
  billed_seconds: number;
  machine_type: string | null;
  region: string | null;
  spot: number;
  rate_usd_per_hour: number;
  compute_usd: number;
  disk_usd: number;
  total_usd: number;
}

export interface OutboxTable {
  /** What the effect is for, unique: `eyes:<job id>`, `refusal:<job id>`, `reply:<request id>`, … */
  key: string;
  job_id: string | null;
  installation_id: number;
  kind: string;
  payload_json: string;
  /** `pending` until delivered, then `done`. */
  state: string;
  /** Deliveries begun; above 1, an earlier one may have reached GitHub. */
  tries: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  created_at: number;
  updated_at: number;
  last_error: string | null;
}

export interface Database {
  jobs: JobsTable;
  job_events: JobEventsTable;
  requests: RequestsTable;
  job_logs: JobLogsTable;
  ledger: LedgerTable;
  ledger_workers: LedgerWorkersTable;
  outbox: OutboxTable;
}
