import type { Job, StepRecord } from "../jobs/types.js";
import { formatDuration } from "../jobs/format-duration.js";
import { describeOutcome } from "./describe-outcome.js";
import { statusMarker } from "./status-marker.js";

export interface StatusFacts {
  /** e.g. "$0 (local; at most 30 min of compute)". */
  ceilingText: string;
  /** The final cost sentence, once the job is over. */
  costText?: string;
  now: number;
}

const STATE_WORDS: Record<string, string> = {
  received: "received",
  queued: "queued",
  provisioning: "starting a worker",
  running: "running",
  reporting: "opening the pull request",
  succeeded: "done",
  failed: "failed",
  cancelled: "cancelled",
  timed_out: "timed out",
  rejected: "not started",
};

/**
 * One checklist line. With `now`, a running step shows its time so far (the check run, a live
 * view); without it only finished steps show a duration, so the comment changes — and is edited —
 * only when a step does.
 */
export function stepLine(step: StepRecord, now?: number): string {
  const box = step.status === "done" ? "[x]" : "[ ]";
  const mark = { pending: "", running: " ⏳", done: "", failed: " ❌", skipped: " (skipped)" }[step.status];
  let took = "";
  const end = step.finishedAt ?? now;
  if (step.startedAt !== undefined && end !== undefined && step.status !== "skipped") {
    took = ` — ${formatDuration((end - step.startedAt) / 1000)}`;
  }
  return `- ${box} ${step.name}${mark}${took}${step.detail ? ` (${step.detail})` : ""}`;
}

/** A job back in the queue after its controller stopped while it was starting or running. */
export function requeuedLine(attempts: number): string {
  return `Queued again: the controller stopped during its ${["first", "second", "third"][attempts - 1] ?? `${attempts}th`} start; it runs again on a new worker.`;
}

/**
 * The one status comment, edited in place. Rendered from structured fields only: no agent output
 * ever reaches it, so nothing the agent prints can leak into it.
 */
export function renderStatusComment(job: Job, facts: StatusFacts): string {
  const lines = [
    statusMarker(job.id),
    `### agent-work: ${STATE_WORDS[job.state] ?? job.state}`,
    "",
    `Requested by @${job.requester} (${job.trigger === "label" ? "label" : "command"}) · job \`${job.id}\` · backend \`${job.backend}\``,
    ...(job.options.route ? [`This job ${job.options.route}.`] : []),
    ...(job.state === "queued" && job.options.waiting ? [`This job waits: ${job.options.waiting}.`] : []),
    ...(job.state === "queued" && job.attempts > 0 ? [requeuedLine(job.attempts)] : []),
    `Cost ceiling: ${facts.ceilingText}`,
    "",
    ...job.steps.map((s) => stepLine(s)),
  ];
  const outcome = describeOutcome(job);
  if (outcome) {
    lines.push("", `**Result:** ${outcome.headline}`);
    if (job.prUrl) lines.push(`**Pull request:** ${job.prUrl}`);
    if (job.finishedAt) lines.push(`**Duration:** ${formatDuration((job.finishedAt - job.createdAt) / 1000)}`);
    if (facts.costText) lines.push(`**Cost:** ${facts.costText}`);
    const blocked = blockedLine(job.result?.blocked);
    if (blocked) lines.push(`**Network:** ${blocked}`);
    if (job.result?.outcome === "patch" && job.result.patch) {
      // Written by an agent on a fork's code: shown as data in a fenced block, never as markup.
      const fence = "`".repeat(Math.max(3, ...(job.result.patch.match(/`+/g) ?? []).map((f) => f.length + 1)));
      const shown =
        job.result.patch.length > 50_000
          ? `${job.result.patch.slice(0, 50_000)}\n[… cut: ${job.result.patch.length - 50_000} more characters]`
          : job.result.patch;
      lines.push("", "<details><summary>The patch (apply with <code>git am</code>)</summary>", "", `${fence}diff`, shown, fence, "", "</details>");
    }
  }
  return lines.join("\n");
}

/**
 * "3 connections blocked: `evil.example:443` (2×), …" from the proxy's record. The host names were
 * chosen by the agent: only plain host names are shown, in code spans, and at most five of them.
 */
export function blockedLine(blocked: { host: string; port: number; count: number }[] | undefined): string | null {
  if (!blocked || blocked.length === 0) return null;
  const total = blocked.reduce((n, b) => n + b.count, 0);
  const shown = blocked.slice(0, 5).map((b) => {
    const name = /^[A-Za-z0-9.-]{1,100}$/.test(b.host) ? `\`${b.host}:${b.port}\`` : "(a host with an unprintable name)";
    return b.count > 1 ? `${name} (${b.count}×)` : name;
  });
  const more = blocked.length > 5 ? `, and ${blocked.length - 5} more hosts` : "";
  return `${total} connection${total === 1 ? "" : "s"} blocked by the allow-list: ${shown.join(", ")}${more} (the job log lists each)`;
}
