import type { Job } from "../../jobs/types.js";
import type { LogLine } from "../../logs/job-log.js";
import { isTerminal } from "../../jobs/state.js";
import { html, type Html } from "../html.js";
import { renderLayout, type Viewer } from "./layout.js";
import { renderJobSummary, type SummaryView } from "./job-summary.js";
import { renderLogLines } from "./log-lines.js";

export function jobPageTitle(job: Job): string {
  return `${job.owner}/${job.repo}#${job.number} · ${job.state.replace("_", " ")} · agent-work`;
}

/** `/jobs/<id>`: the summary, and the log so far; the script follows the rest live. */
export function renderJobPage(job: Job, lines: LogLine[], view: SummaryView & { viewer: Viewer; truncated: boolean }): Html {
  const live = !isTerminal(job.state);
  const after = lines.at(-1)?.id ?? 0;
  return renderLayout({
    title: jobPageTitle(job),
    viewer: view.viewer,
    script: true,
    body: html`<section class="card" id="summary">${renderJobSummary(job, view)}</section>
<section class="card">
  <h2 class="log-head"><span>Log <small>(times in UTC, secrets redacted)</small></span><span id="live" class="live${live ? "" : " ended"}">${live ? "live" : "ended"}</span></h2>
  <div id="log" class="log" data-events="/jobs/${job.id}/events" data-after="${after}" data-live="${live ? "true" : "false"}">${lines.length === 0 ? html`<div class="empty">No output yet.</div>` : renderLogLines(lines)}</div>
  ${view.truncated ? html`<p class="muted">The page shows the first ${lines.length} lines; the rest follow below as they load.</p>` : ""}
</section>`,
  });
}
