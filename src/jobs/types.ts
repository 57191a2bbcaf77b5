/**
 * Glossary (see docs/architecture.md for the whole picture):
 * - job: one request for agent work on one issue or PR. Its id names everything it creates
 *   (worker folder / VM name, branch suffix in logs, check run external_id, comment marker).
 * - delivery: one webhook delivery (X-GitHub-Delivery); at most one job per delivery.
 * - intake: the first pipeline step after a delivery is recorded: authorise the sender, read the
 *   repo config, react, create the queued check run and the status comment.
 * - lease: a claim on a job by one controller process until `leaseExpiresAt`; an expired lease
 *   means the holder died and another pass may recover the job. Each claim bumps `leaseEpoch`,
 *   which with the owner fences the holder's writes.
 * - steps: what the status comment and the check run list (queued, worker, clone, setup when the
 *   repository has setup commands, agent, commit, push, pull request), each with start/finish times.
 */
import type { JobState } from "./state.js";
import type { RepoConfig } from "../config/repo-config.js";
import type { Worker, RunResult } from "../backends/types.js";

export type JobKind = "issue" | "pull_request";
export type JobTrigger = "label" | "command";

export type StepStatus = "pending" | "running" | "done" | "failed" | "skipped";
export interface StepRecord {
  name: string;
  status: StepStatus;
  startedAt?: number;
  finishedAt?: number;
  detail?: string;
}

/** What a command or a size label asked for, on top of the repository's config. */
export interface JobOptions {
  backend?: string;
  machine?: string;
  maxMinutes?: number;
  /** `--model`: one of the repository's `models`. */
  model?: string;
  /** `large` from the label `agent-work:large`. */
  size?: string;
  /** The command line as typed, quoted back in refusals. */
  commandLine?: string;
  /**
   * Where the job runs and why, when that was not its own choice: the routing rule that picked its
   * backend at intake, or the move to another backend because its own was full, down or at its cap.
   */
  route?: string;
  /** While the job waits for room (every backend it may use full, down or at its cap): why, for the status comment. */
  waiting?: string;
  /** The or pull request's labels when the job was asked for (routing rules match on them). */
  labels?: string[];
  /** On the ssh backend, only hosts carrying every one of these labels take the job (a routing rule's or the repository's `ssh_labels`). */
  sshLabels?: string[];
  /** A fork's pull request run without secrets: where its branch is cloned from. */
  forkCloneUrl?: string;
  /**
   * A run asked for in a pull request review: the review, and for an inline comment that comment
   * and the first comment of its thread (where GitHub takes replies). Intake adds the review's
   * comments to the prompt; the end of the job is answered in their threads.
   */
  review?: { reviewId: number; commentId?: number; threadId?: number };
  /**
   * Set while the job waits for the active job (this id) to end: it stays `received`,
   * holds the one waiting slot, and is admitted by the first intake pass that finds the
   * issue free. A newer request takes the slot (this job is then rejected, superseded).
   */
  waitingFor?: string;
  /** `/agent ask`: the agent answers `instructions` in a comment; nothing is committed or pushed, and its token can only read. */
  ask?: true;
}

/** A comment in the prompt: from the discussion, or from a review with its place in the diff. */
export interface ContextComment {
  author: string;
  body: string;
  /** A review comment's id, and the first comment of its thread (replied to at the end of the job). */
  id?: number;
  threadId?: number;
  /** A review comment's file, line and diff hunk. */
  path?: string;
  line?: number | null;
  diffHunk?: string;
}

/** Earlier discussion on the issue, kept only from people with write access, at trigger time. */
export interface JobContext {
  comments: ContextComment[];
  droppedComments: number;
}

export interface Job {
  id: string;
  deliveryId: string;
  installationId: number;
  repoId: number;
  owner: string;
  repo: string;
  number: number;
  kind: JobKind;
  trigger: JobTrigger;
  requester: string;
  title: string;
  body: string;
  cloneUrl: string;
  defaultBranch: string;
  instructions: string | null;
  config: RepoConfig | null;
  state: JobState;
  priority: number;
  backend: string;
  baseSha: string | null;
  checkRunId: number | null;
  commentId: number | null;
  prCheckRunId: number | null;
  branch: string | null;
  headSha: string | null;
  prNumber: number | null;
  prUrl: string | null;
  worker: Worker | null;
  result: RunResult | null;
  steps: StepRecord[];
  attempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  leaseEpoch: number;
  deadlineAt: number | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  computeSeconds: number | null;
  costUsd: number | null;
  message: string | null;
  options: JobOptions;
  triggerCommentId: number | null;
  context: JobContext | null;
  /** For a job on a pull request: the PR's branch, which the agent works on and pushes to. */
  prHeadRef: string | null;
  retryOf: string | null;
  cancelRequestedBy: string | null;
}

/** What a webhook handler knows when it records a job: nothing it would need GitHub to learn. */
export type NewJob = Pick<
  Job,
  | "deliveryId"
  | "installationId"
  | "repoId"
  | "owner"
  | "repo"
  | "number"
  | "kind"
  | "trigger"
  | "requester"
  | "title"
  | "body"
  | "cloneUrl"
  | "defaultBranch"
  | "instructions"
> &
  Partial<Pick<Job, "options" | "triggerCommentId" | "retryOf" | "context">>;
