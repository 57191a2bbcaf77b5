import type { Job } from "../../jobs/types.js";
import { JOB_STATES } from "../../jobs/state.js";
import { formatDuration } from "../../jobs/format-duration.js";
import { formatUsd } from "../../cost/estimate.js";
import { html, type Html } from "../html.js";
import { renderLayout, type Viewer } from "./layout.js";
import { STATE_WORDS, issueUrl, stateBadge } from "./job-summary.js";
import { formatTime } from "./format-time.js";

export interface RepoMonth {
  repo: string;
  jobs: number;
  computeSeconds: number;
  /** Everything billed: compute and the agent's model. */
  usd: number;
  /** The part of `usd` the agent's model cost, as its CLI reported it or the price table priced it. */
  modelUsd: number;
}

export interface JobsListView {
  viewer: Viewer;
  githubUrl: string;
  jobs: Job[];
  /** Every repository the viewer can read that has jobs, for the filter. */
  repos: string[];
  filter: { repo?: string; state?: string };
  month: { label: string; repos: RepoMonth[] };
  now: number;
  /** More jobs matched than the page shows. */
  more: boolean;
}

function duration(job: Job, now: number): string {
  const from = job.startedAt ?? job.createdAt;
  if (job.finishedAt !== null) return formatDuration((job.finishedAt - from) / 1000);
  return job.startedAt ? formatDuration((now - from) / 1000) : "—";
}

/** `/jobs`: running and recent jobs of repositories the viewer can read, and this month's cost per repository. */
export function renderJobsList(view: JobsListView): Html {
  const option = (value: string, label: string, selected: boolean) => html`<option value="${value}"${selected ? html` selected` : ""}>${label}</option>`;
  const totals = view.month.repos.reduce(
    (sum, r) => ({ jobs: sum.jobs + r.jobs, usd: sum.usd + r.usd, modelUsd: sum.modelUsd + r.modelUsd, s: sum.s + r.computeSeconds }),
    { jobs: 0, usd: 0, modelUsd: 0, s: 0 },
  );
  const row = (name: Html, r: { jobs: number; usd: number; modelUsd: number; s: number }, total: boolean) =>
    html`<tr><td class="main">${name}</td><td data-label="Jobs" class="num">${r.jobs}</td><td data-label="Compute time" class="num">${formatDuration(r.s)}</td><td data-label="Compute" class="num">${formatUsd(Math.max(0, r.usd - r.modelUsd))}</td><td data-label="Model" class="num">${formatUsd(r.modelUsd)}</td><td data-label="Total" class="num">${total ? html`<b>${formatUsd(r.usd)}</b>` : formatUsd(r.usd)}</td></tr>`;
  return renderLayout({
    title: "Jobs · agent-work",
    viewer: view.viewer,
    body: html`<section class="card">
  <h1>Jobs</h1>
  <p class="sub">Running and recent agent-work jobs in repositories you can read.</p>
  <form class="filters" method="get" action="/jobs">
    <label>Repository<select name="repo">${option("", "All repositories", !view.filter.repo)}${view.repos.map((r) => option(r, r, view.filter.repo === r))}</select></label>
    <label>State<select name="state">${option("", "Any state", !view.filter.state)}${option("active", "Active (queued or running)", view.filter.state === "active")}${JOB_STATES.map((s) => option(s, STATE_WORDS[s] ?? s, view.filter.state === s))}</select></label>
    <button type="submit">Filter</button>
  </form>
</section>
<section class="card">
  ${
    view.jobs.length === 0
      ? html`<p class="muted">No jobs${view.filter.repo || view.filter.state ? " match this filter" : " yet in repositories you can read"}.</p>`
      : html`<table class="stack">
    <thead><tr><th>Job</th><th>State</th><th>Backend</th><th>Started</th><th class="num">Duration</th><th class="num">Cost</th></tr></thead>
    <tbody>${view.jobs.map(
      (job) => html`<tr>
      <td class="main"><a href="/jobs/${job.id}"><code>${job.id}</code></a> · <a href="${issueUrl(view.githubUrl, job)}">${job.owner}/${job.repo}#${job.number}</a><span class="job-title">${job.title}</span></td>
      <td data-label="State">${stateBadge(job)}</td>
      <td data-label="Backend">${job.backend}</td>
      <td data-label="Started">${formatTime(job.startedAt ?? job.createdAt)}</td>
      <td data-label="Duration" class="num">${duration(job, view.now)}</td>
      <td data-label="Cost" class="num">${job.costUsd !== null ? formatUsd(job.costUsd) : "—"}</td>
    </tr>`,
    )}</tbody>
  </table>${view.more ? html`<p class="muted">Showing the ${view.jobs.length} most recent; filter by repository or state to see others.</p>` : ""}`
  }
</section>
<section class="card">
  <h2>Cost in ${view.month.label} <small class="muted">(UTC)</small></h2>
  ${
    view.month.repos.length === 0
      ? html`<p class="muted">No jobs this month.</p>`
      : html`<table class="stack">
    <thead><tr><th>Repository</th><th class="num">Jobs</th><th class="num">Compute time</th><th class="num">Compute</th><th class="num">Model</th><th class="num">Total</th></tr></thead>
    <tbody>${view.month.repos.map((r) => row(html`<a href="/jobs?repo=${encodeURIComponent(r.repo)}">${r.repo}</a>`, { ...r, s: r.computeSeconds }, false))}${view.month.repos.length > 1 ? row(html`<b>All</b>`, totals, true) : ""}</tbody>
  </table>`
  }
</section>`,
  });
}
