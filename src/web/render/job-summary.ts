import type { Job, StepRecord } from "../../jobs/types.js";
import { isActive, isTerminal } from "../../jobs/state.js";
import { formatDuration } from "../../jobs/format-duration.js";
import { describeOutcome } from "../../status/describe-outcome.js";
import { formatUsd } from "../../cost/estimate.js";
import type { AgentUsage } from "../../cost/ledger.js";
import { modelTokensText } from "../../pipeline/cost-texts.js";
import { html, type Html } from "../html.js";
import { formatTime } from "./format-time.js";

export interface SummaryView {
  /** GitHub's web base (https://github.com or the GHE host) for links to the issue and PR. */
  githubUrl: string;
  /** The viewer may stop the job (their permission meets REQUIRED_PERMISSION). */
  canCancel: boolean;
  csrf: string;
  /** A Cancel this viewer just sent, not yet answered. */
  cancelSent?: boolean;
  now: number;
  /** The agent's model use as the ledger billed it, for a job that is over (compute + model = total). */
  modelUsage?: AgentUsage | null;
}

export const STATE_WORDS: Record<string, string> = {
  received: "received",
  queued: "queued",
  provisioning: "starting worker",
  running: "running",
  reporting: "reporting",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  timed_out: "timed out",
  rejected: "not started",
};

export function stateBadge(job: Pick<Job, "state">): Html {
  return html`<span class="badge state-${job.state}" data-state="${job.state}">${STATE_WORDS[job.state] ?? job.state}</span>`;
}

export function issueUrl(githubUrl: string, job: Pick<Job, "owner" | "repo" | "number" | "kind">): string {
  return `${githubUrl}/${job.owner}/${job.repo}/${job.kind === "pull_request" ? "pull" : "issues"}/${job.number}`;
}

/** The headline the check run and comment use, with its Markdown turned back into plain text. */
function outcomeText(job: Job): string | undefined {
  const outcome = describeOutcome(job);
  // The badge already says the state: drop the headline's emoji (and its Markdown).
  if (outcome)
    return outcome.headline
      .replace(/^\p{Extended_Pictographic}\uFE0F?\s*/u, "")
      .replace(/\[`?([^\]`]+)`?\]\([^)]*\)/g, "$1")
      .replace(/`/g, "");
  if (job.state === "rejected") return `Not started${job.message ? `: ${job.message}` : ""}`;
  return undefined;
}

function costFact(job: Job, usage: AgentUsage | null | undefined): Html {
  if (job.costUsd !== null) {
    const compute = job.computeSeconds !== null ? html` <span class="muted">· ${formatDuration(job.computeSeconds)} of compute</span>` : "";
    if (!usage) return html`${formatUsd(job.costUsd)}${compute}`;
    const modelUsd = usage.costUsd ?? 0;
    const model = html`model ${usage.costUsd === undefined ? html`<span class="muted">(no price known)</span>` : formatUsd(modelUsd)} <span class="muted">(${modelTokensText(usage)})</span>`;
    return html`<span class="cost-split">compute ${formatUsd(Math.max(0, job.costUsd - modelUsd))}${compute} + ${model} = <b>${formatUsd(job.costUsd)}</b></span>`;
  }
  // The job row carries the cost once the job is over; the ledger's running figure is not wired here yet.
  return html`<span class="muted">${isActive(job.state) ? "known when it ends" : "none"}</span>`;
}

/** At most this many blocked host:port pairs are listed on the page (the log has every one). */
const BLOCKED_SHOWN = 50;

/**
 * The connections the allow-list refused, from the worker's record: each host and port (chosen by
 * the agent, so escaped like any text), how many times, and when first.
 */
function blockedList(job: Job): Html {
  const blocked = job.result?.blocked;
  if (!blocked || blocked.length === 0) return html``;
  const total = blocked.reduce((n, b) => n + b.count, 0);
  const more = blocked.length - BLOCKED_SHOWN;
  return html`<div class="blocked" id="blocked"><h2>Network: ${total} connection${total === 1 ? "" : "s"} blocked by the allow-list</h2>
<ul>${blocked.slice(0, BLOCKED_SHOWN).map((b) => html`<li><code>${b.host}:${b.port}</code>${b.count > 1 ? html` <span class="muted">×${b.count}</span>` : ""} <span class="muted">first at ${formatTime(b.firstAt)}</span></li>`)}${more > 0 ? html`<li class="muted">and ${more} more hosts (the log lists each)</li>` : ""}</ul></div>`;
}

function durationFact(job: Job, now: number): Html {
  const from = job.startedAt ?? job.createdAt;
  if (job.finishedAt !== null) return html`${formatDuration((job.finishedAt - from) / 1000)}`;
  if (!isActive(job.state)) return html`<span class="muted">—</span>`;
  // The client script ticks this every second.
  return html`<span data-since="${from}">${formatDuration((now - from) / 1000)}</span>`;
}

function stepItem(step: StepRecord, now: number, jobEndedAt: number | undefined): Html {
  // A job that ended while a step ran (cancelled, timed out) leaves that step "running": it stopped.
  if (jobEndedAt !== undefined && step.status === "running")
    step = { ...step, status: "failed", detail: step.detail ?? "stopped", finishedAt: step.finishedAt ?? jobEndedAt };
  const end = step.finishedAt ?? (step.status === "running" ? undefined : step.startedAt);
  const took =
    step.startedAt === undefined || step.status === "skipped"
      ? ""
      : end === undefined
        ? html`<span class="took" data-since="${step.startedAt}">${formatDuration((now - step.startedAt) / 1000)}</span>`
        : html`<span class="took">${formatDuration((end - step.startedAt) / 1000)}</span>`;
  return html`<li class="step-${step.status}" title="${step.detail ?? step.status}">${step.name}${took}</li>`;
}

/** The top of the job page; the SSE stream sends it again, rendered the same way, when the job changes. */
export function renderJobSummary(job: Job, view: SummaryView): Html {
  const machine = job.options.machine ?? (job.options.size ? `size ${job.options.size}` : undefined);
  const outcome = outcomeText(job);
  const active = isActive(job.state);
  return html`<div class="title-row">${stateBadge(job)}<h1>${job.title}</h1></div>
<p class="sub"><a href="${issueUrl(view.githubUrl, job)}">${job.owner}/${job.repo}#${job.number}</a> · job <code>${job.id}</code> · requested by @${job.requester} ${job.trigger === "label" ? "with a label" : "with /agent run"}${job.retryOf ? html` · retry of <a href="/jobs/${job.retryOf}"><code>${job.retryOf}</code></a>` : ""}</p>
${outcome ? html`<p class="outcome">${outcome}</p>` : ""}
${active && job.cancelRequestedBy ? html`<p class="notice">Stop requested by @${job.cancelRequestedBy}; the worker is being destroyed.</p>` : active && view.cancelSent ? html`<p class="notice">Cancel sent; the job stops within a few seconds.</p>` : ""}
<dl class="facts">
  <div><dt>Backend</dt><dd>${job.backend}${machine ? html` <span class="muted">· ${machine}</span>` : ""}</dd></div>
  <div><dt>Worker</dt><dd>${job.worker ? html`<code>${job.worker.id}</code>` : html`<span class="muted">none yet</span>`}</dd></div>
  <div><dt>Created</dt><dd>${formatTime(job.createdAt)}</dd></div>
  <div><dt>Duration</dt><dd>${durationFact(job, view.now)}</dd></div>
  <div><dt>Cost</dt><dd>${costFact(job, view.modelUsage)}</dd></div>
  <div><dt>Pull request</dt><dd>${job.prUrl ? html`<a href="${job.prUrl}">#${job.prNumber ?? ""}</a>` : job.branch ? html`<span class="muted">branch</span> <code>${job.branch}</code>` : html`<span class="muted">none yet</span>`}</dd></div>
</dl>
${blockedList(job)}
<ol class="steps">${job.steps.map((step) => stepItem(step, view.now, isTerminal(job.state) ? (job.finishedAt ?? job.updatedAt) : undefined))}</ol>
${
  active && view.canCancel && !job.cancelRequestedBy
    ? html`<div class="actions"><form class="cancel" method="post" action="/jobs/${job.id}/cancel"><input type="hidden" name="csrf" value="${view.csrf}"><button class="danger" type="submit">Cancel job</button></form></div>`
    : ""
}`;
}
