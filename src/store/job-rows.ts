/**
 * The jobs table's rows and the Job they stand for: the one place that knows the column names
 * (src/store/schema.ts) and how each field is stored (JSON text, bigint ids read as numbers).
 */
import type { Selectable } from "kysely";
import type { JobsTable } from "./schema.js";
import type { Job, NewJob, StepRecord } from "../jobs/types.js";
import type { JobState } from "../jobs/state.js";

/** The fields a write may change; the rest are set once, when the job is recorded. */
export type JobPatch = Partial<
  Pick<
    Job,
    | "config"
    | "priority"
    | "backend"
    | "baseSha"
    | "checkRunId"
    | "commentId"
    | "prCheckRunId"
    | "branch"
    | "headSha"
    | "prNumber"
    | "prUrl"
    | "worker"
    | "result"
    | "steps"
    | "attempts"
    | "deadlineAt"
    | "startedAt"
    | "finishedAt"
    | "computeSeconds"
    | "costUsd"
    | "message"
    | "options"
    | "context"
    | "prHeadRef"
    | "cancelRequestedBy"
  >
>;

/** The steps of a job not yet started: what a new row, and a job handed back to the queue, show. */
export const INITIAL_STEPS: StepRecord[] = [
  { name: "queued", status: "pending" },
  { name: "worker", status: "pending" },
  { name: "clone", status: "pending" },
  { name: "agent", status: "pending" },
  { name: "commit", status: "pending" },
  { name: "push", status: "pending" },
  { name: "pull request", status: "pending" },
];

/** The `active_key` column of a job in an active state: unique, so an issue has one active job at a time. */
export function activeKey(repoId: number, number: number): string {
  return `${repoId}#${number}`;
}

/** The row a delivery is recorded as: a `received` job, no slot taken, every step pending. */
export function receivedRow(id: string, input: NewJob, backend: string, now: number) {
  return {
    id,
    delivery_id: input.deliveryId,
    installation_id: input.installationId,
    repo_id: input.repoId,
    owner: input.owner,
    repo: input.repo,
    number: input.number,
    kind: input.kind,
    trigger: input.trigger,
    requester: input.requester,
    title: input.title,
    body: input.body,
    clone_url: input.cloneUrl,
    default_branch: input.defaultBranch,
    instructions: input.instructions,
    config_json: null,
    state: "received",
    active_key: null,
    priority: 0,
    backend,
    steps_json: JSON.stringify(INITIAL_STEPS),
    attempts: 0,
    created_at: now,
    updated_at: now,
    options_json: JSON.stringify(input.options ?? {}),
    trigger_comment_id: input.triggerCommentId ?? null,
    retry_of: input.retryOf ?? null,
    context_json: input.context ? JSON.stringify(input.context) : null,
  };
}

/** A row as read (SQLite or PostgreSQL: bigints may come back as strings) as the Job the code uses. */
export function toJob(row: Selectable<JobsTable>): Job {
  return {
    id: row.id,
    deliveryId: row.delivery_id,
    installationId: Number(row.installation_id),
    repoId: Number(row.repo_id),
    owner: row.owner,
    repo: row.repo,
    number: row.number,
    kind: row.kind as Job["kind"],
    trigger: row.trigger as Job["trigger"],
    requester: row.requester,
    title: row.title,
    body: row.body,
    cloneUrl: row.clone_url,
    defaultBranch: row.default_branch,
    instructions: row.instructions,
    config: row.config_json ? JSON.parse(row.config_json) : null,
    state: row.state as JobState,
    priority: row.priority,
    backend: row.backend,
    baseSha: row.base_sha,
    checkRunId: row.check_run_id === null ? null : Number(row.check_run_id),
    commentId: row.comment_id === null ? null : Number(row.comment_id),
    prCheckRunId: row.pr_check_run_id === null ? null : Number(row.pr_check_run_id),
    branch: row.branch,
    headSha: row.head_sha,
    prNumber: row.pr_number,
    prUrl: row.pr_url,
    worker: row.worker_json ? JSON.parse(row.worker_json) : null,
    result: row.result_json ? JSON.parse(row.result_json) : null,
    steps: JSON.parse(row.steps_json),
    attempts: row.attempts,
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at === null ? null : Number(row.lease_expires_at),
    leaseEpoch: Number(row.lease_epoch ?? 0),
    deadlineAt: row.deadline_at === null ? null : Number(row.deadline_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    startedAt: row.started_at === null ? null : Number(row.started_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    computeSeconds: row.compute_seconds,
    costUsd: row.cost_usd,
    message: row.message,
    options: row.options_json ? JSON.parse(row.options_json) : {},
    triggerCommentId: row.trigger_comment_id === null ? null : Number(row.trigger_comment_id),
    context: row.context_json ? JSON.parse(row.context_json) : null,
    prHeadRef: row.pr_head_ref,
    retryOf: row.retry_of,
    cancelRequestedBy: row.cancel_requested_by,
  };
}

/** The columns a patch writes: only the fields it holds; a nullable one held as null or undefined is cleared. */
export function patchToRow(patch: JobPatch): Partial<JobsTable> {
  const row: Partial<JobsTable> = {};
  const set = <K extends keyof JobsTable>(k: K, v: JobsTable[K]) => {
    row[k] = v;
  };
  if ("config" in patch) set("config_json", patch.config ? JSON.stringify(patch.config) : null);
  if (patch.priority !== undefined) set("priority", patch.priority);
  if (patch.backend !== undefined) set("backend", patch.backend);
  if ("baseSha" in patch) set("base_sha", patch.baseSha ?? null);
  if ("checkRunId" in patch) set("check_run_id", patch.checkRunId ?? null);
  if ("commentId" in patch) set("comment_id", patch.commentId ?? null);
  if ("prCheckRunId" in patch) set("pr_check_run_id", patch.prCheckRunId ?? null);
  if ("branch" in patch) set("branch", patch.branch ?? null);
  if ("headSha" in patch) set("head_sha", patch.headSha ?? null);
  if ("prNumber" in patch) set("pr_number", patch.prNumber ?? null);
  if ("prUrl" in patch) set("pr_url", patch.prUrl ?? null);
  if ("worker" in patch) set("worker_json", patch.worker ? JSON.stringify(patch.worker) : null);
  if ("result" in patch) set("result_json", patch.result ? JSON.stringify(patch.result) : null);
  if (patch.steps !== undefined) set("steps_json", JSON.stringify(patch.steps));
  if (patch.attempts !== undefined) set("attempts", patch.attempts);
  if ("deadlineAt" in patch) set("deadline_at", patch.deadlineAt ?? null);
  if ("startedAt" in patch) set("started_at", patch.startedAt ?? null);
  if ("finishedAt" in patch) set("finished_at", patch.finishedAt ?? null);
  if ("computeSeconds" in patch) set("compute_seconds", patch.computeSeconds ?? null);
  if ("costUsd" in patch) set("cost_usd", patch.costUsd ?? null);
  if ("message" in patch) set("message", patch.message ?? null);
  if (patch.options !== undefined) set("options_json", JSON.stringify(patch.options));
  if ("context" in patch) set("context_json", patch.context ? JSON.stringify(patch.context) : null);
  if ("prHeadRef" in patch) set("pr_head_ref", patch.prHeadRef ?? null);
  if ("cancelRequestedBy" in patch) set("cancel_requested_by", patch.cancelRequestedBy ?? null);
  return row;
}
