import type { Job } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { renderStatusComment } from "../status/render-status-comment.js";
import { renderCheckRun } from "../status/render-check-run.js";
import type { PipelineDeps } from "./deps.js";
import { costTexts } from "./cost-texts.js";
import type { AgentUsage } from "../cost/ledger.js";

const LOG_TAIL_LINES = 40;
/** Time-only changes to the check run (meter, log tail) are written every this many status intervals. */
const LIVE_FACTOR = 10;
/**
 * A change of state or step reaches GitHub this soon, whatever the interval: long enough to fold a
 * burst of steps (commit, push) into one write, short enough that people see it as it happens.
 */
const URGENT_DELAY_MS = 250;

/**
 * Keeps the status comment and the check run in step with the job. A change of state or step is
 * written within a quarter of a second (bursts folded into one write); what only changes with time
 * (log lines, the meter) is throttled to one update per interval, and nothing is written when
 * nothing visible changed. That keeps a whole job to a handful of API calls.
 */
export class StatusPublisher {
  private readonly logTail: string[] = [];
  private lastComment = "";
  private lastCheck = "";
  private lastFlushAt: number;
  private lastCheckWriteAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private urgentPending = false;
  private flushing: Promise<void> = Promise.resolve();
  /** The agent's model use so far, while it runs (the job runner's meter); shown in the live meter. */
  modelUsage: () => AgentUsage | null = () => null;

  constructor(
    private readonly deps: PipelineDeps,
    private readonly octokit: GitHub,
    private readonly jobId: string,
  ) {
    // The surfaces were just created or written: the first time-only update waits a whole interval.
    this.lastFlushAt = deps.now();
  }

  /** Adds a log line (redacted here, before it is kept anywhere). */
  log(line: string): void {
    this.logTail.push(this.deps.redactor.redact(line).slice(0, 500));
    if (this.logTail.length > LOG_TAIL_LINES) this.logTail.shift();
  }

  /**
   * Asks for an update; coalesces with any update already pending. `urgent` (a state or step
   * changed) brings a pending time-only update forward to within URGENT_DELAY_MS.
   */
  poke(urgent = false): void {
    const interval = this.deps.config.statusUpdateIntervalSeconds * 1000;
    const wait = urgent ? URGENT_DELAY_MS : Math.max(0, this.lastFlushAt + interval - this.deps.now());
    if (this.timer) {
      if (!urgent || this.urgentPending) return;
      clearTimeout(this.timer);
    }
    this.urgentPending = urgent;
    this.timer = setTimeout(() => {
      this.urgentPending = false;
      this.timer = undefined;
      void this.flush().catch((err) => this.deps.log.warn({ err, jobId: this.jobId }, "status update failed; the next one will carry it"));
    }, wait);
    this.timer.unref?.();
  }

  /**
   * Writes the current view now (used at the end of a job, and when throttling allows). With `as`,
   * writes that job instead of the stored one: the final view, published before the job is
   * written finished, so a controller that dies in between publishes it again.
   */
  async flush(as?: Job): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const run = this.flushing.then(() => this.write(as));
    this.flushing = run.catch(() => undefined);
    return run;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Drops a pending update and waits for one under way, so a write the caller makes next (moving
   * the check run to the PR) is not overtaken by an older view of the job.
   */
  async idle(): Promise<void> {
    this.stop();
    await this.flushing;
  }

  private async write(as?: Job): Promise<void> {
    const job = as ?? (await this.deps.store.getOrThrow(this.jobId));
    this.lastFlushAt = this.deps.now();
    const facts = { ...(await costTexts(this.deps, job, this.modelUsage())), now: this.deps.now() };
    const { owner, repo } = job;
    if (job.commentId) {
      const body = this.deps.redactor.redact(renderStatusComment(job, facts));
      if (body !== this.lastComment) {
        await this.octokit.rest.issues.updateComment({ owner, repo, comment_id: job.commentId, body });
        this.lastComment = body;
      }
    }
    // Once the PR exists, the PR head's check is the one people look at; the first one is closed.
    const checkRunId = job.prCheckRunId ?? job.checkRunId;
    if (checkRunId) {
      const view = renderCheckRun(job, { ...facts, logTail: this.logTail });
      view.output.summary = this.deps.redactor.redact(view.output.summary);
      if (view.output.text) view.output.text = this.deps.redactor.redact(view.output.text);
      // What changes the meaning of the check (state, steps, buttons) is written at once; what only
      // changes with time (elapsed, meter, log tail) at most every LIVE_FACTOR intervals, so a
      // 10-minute job costs about one such update (see bench/api-calls.ts).
      const key = JSON.stringify({
        status: view.status,
        conclusion: view.conclusion,
        steps: job.steps.map((st) => [st.name, st.status]),
        actions: view.actions,
      });
      const now = this.deps.now();
      const liveDue = now - this.lastCheckWriteAt >= LIVE_FACTOR * this.deps.config.statusUpdateIntervalSeconds * 1000;
      if (key !== this.lastCheck || (liveDue && view.status !== "completed")) {
        await this.octokit.rest.checks.update({
          owner,
          repo,
          check_run_id: checkRunId,
          status: view.status,
          ...(view.conclusion ? { conclusion: view.conclusion, completed_at: new Date(this.deps.now()).toISOString() } : {}),
          output: view.output,
          actions: view.actions,
        });
        this.lastCheck = key;
        this.lastCheckWriteAt = now;
      }
    }
  }

  /** The check-run body as it would be written now, for creating the PR head's check in one call. */
  async currentCheckView(as?: Job): Promise<ReturnType<typeof renderCheckRun>> {
    const job = as ?? (await this.deps.store.getOrThrow(this.jobId));
    const view = renderCheckRun(job, { ...(await costTexts(this.deps, job, this.modelUsage())), now: this.deps.now(), logTail: this.logTail });
    view.output.summary = this.deps.redactor.redact(view.output.summary);
    if (view.output.text) view.output.text = this.deps.redactor.redact(view.output.text);
    this.lastCheck = JSON.stringify({
      status: view.status,
      conclusion: view.conclusion,
      steps: job.steps.map((st) => [st.name, st.status]),
      actions: view.actions,
    });
    this.lastCheckWriteAt = this.deps.now();
    return view;
  }
}
