import type { Job } from "../jobs/types.js";
import { formatDuration } from "../jobs/format-duration.js";
import { describeOutcome, type Conclusion } from "./describe-outcome.js";
import { requeuedLine, stepLine, type StatusFacts } from "./render-status-comment.js";

export interface CheckRunAction {
  label: string;
  description: string;
  identifier: "cancel" | "retry";
}

export interface CheckRunView {
  status: "queued" | "in_progress" | "completed";
  conclusion?: Conclusion;
  output: { title: string; summary: string; text?: string };
  /** Buttons on the check run (GitHub: label ≤ 20, description ≤ 40, identifier ≤ 20 chars). */
  actions: CheckRunAction[];
}

const CANCEL: CheckRunAction = { label: "Cancel", description: "Stop the agent and destroy its worker", identifier: "cancel" };
const RETRY: CheckRunAction = { label: "Retry", description: "Run the agent again on the same inputs", identifier: "retry" };

/** GitHub caps output text at 65535 characters; a log tail well below that keeps updates small. */
const MAX_TEXT = 20_000;

/** The check run's status and output. `logTail` must already be redacted. */
export function renderCheckRun(job: Job, facts: StatusFacts & { logTail: string[]; meterText?: string }): CheckRunView {
  const outcome = describeOutcome(job);
  const status = outcome ? "completed" : job.state === "queued" || job.state === "received" ? "queued" : "in_progress";
  const elapsed = formatDuration((facts.now - job.createdAt) / 1000);
  const title = outcome ? outcome.headline : `${job.state === "queued" ? "Queued" : "Running"} · ${elapsed}`;
  const summary = [
    `Job \`${job.id}\` for #${job.number}, requested by @${job.requester}, on backend \`${job.backend}\`.`,
    ...(job.state === "queued" && job.options.waiting ? ["", `Waits: ${job.options.waiting}.`] : []),
    ...(job.state === "queued" && job.attempts > 0 ? ["", requeuedLine(job.attempts)] : []),
    "",
    ...job.steps.map((s) => stepLine(s, facts.now)),
    "",
    facts.costText ? `Cost: ${facts.costText}` : facts.meterText ? `Cost: ${facts.meterText}` : `Cost ceiling: ${facts.ceilingText}`,
  ].join("\n");
  let text: string | undefined;
  if (facts.logTail.length > 0) {
    let tail = facts.logTail.join("\n");
    if (tail.length > MAX_TEXT) tail = tail.slice(tail.length - MAX_TEXT);
    text = ["Last lines of the log (secrets redacted):", "", "```text", tail.replace(/```/g, "ˋˋˋ"), "```"].join("\n");
  }
  const actions = !outcome ? [CANCEL] : ["failure", "cancelled", "timed_out"].includes(outcome.conclusion) ? [RETRY] : [];
  return { status, ...(outcome ? { conclusion: outcome.conclusion } : {}), output: { title, summary, ...(text ? { text } : {}) }, actions };
}
