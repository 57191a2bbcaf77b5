import type { ServerResponse } from "node:http";
import type { Job } from "../../jobs/types.js";
import { JOB_STATES, isActive, type JobState } from "../../jobs/state.js";
import { renderJobsList, type RepoMonth } from "../render/jobs-list.js";
import type { Session, WebContext } from "../web-context.js";
import { githubWebUrl } from "./job-page.js";

/** Jobs read to build the page; the repositories among them are checked against the viewer. */
const SCAN = 500;
const SHOWN = 100;
/** GitHub calls in flight for one page (each repository once a minute per person, then cached). */
const PARALLEL = 6;

/** GET /jobs?repo=<owner/repo>&state=<state|active>. */
export async function showJobsList(ctx: WebContext, session: Session, res: ServerResponse, url: URL): Promise<void> {
  const { store } = ctx.deps;
  const now = ctx.deps.now();
  const recent = await store.list({ limit: SCAN });
  const readable = await readableRepos(ctx, session, uniqueRepos(recent));
  const visible = recent.filter((j) => readable.has(j.repoId));

  const repoParam = url.searchParams.get("repo") ?? "";
  const stateParam = url.searchParams.get("state") ?? "";
  const state = stateParam === "active" || (JOB_STATES as readonly string[]).includes(stateParam) ? stateParam : "";
  const matching = visible.filter(
    (j) => (!repoParam || `${j.owner}/${j.repo}` === repoParam) && (!state || (state === "active" ? isActive(j.state) : j.state === (state as JobState))),
  );

  const d = new Date(now);
  const monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const month: RepoMonth[] = [];
  for (const [repoId, name] of uniqueRepos(visible)) {
    const jobs = await store.repoJobsSince(repoId, monthStart);
    if (jobs.length === 0) continue;
    const billed = await ctx.deps.ledger.entriesThisMonth(repoId);
    month.push({
      repo: name,
      jobs: jobs.length,
      computeSeconds: jobs.reduce((s, j) => s + (j.computeSeconds ?? 0), 0),
      usd: jobs.reduce((s, j) => s + (j.costUsd ?? 0), 0),
      modelUsd: billed.reduce((s, e) => s + (e.state === "final" ? (e.agentUsage?.costUsd ?? 0) : 0), 0),
    });
  }
  month.sort((a, b) => b.usd - a.usd || a.repo.localeCompare(b.repo));

  ctx.sendHtml(
    res,
    200,
    renderJobsList({
      viewer: { login: session.login, csrf: ctx.csrfToken(session) },
      githubUrl: githubWebUrl(ctx),
      jobs: matching.slice(0, SHOWN),
      more: matching.length > SHOWN,
      repos: [...new Set(visible.map((j) => `${j.owner}/${j.repo}`))].sort(),
      filter: { ...(repoParam ? { repo: repoParam } : {}), ...(state ? { state } : {}) },
      month: { label: d.toLocaleString("en", { month: "long", year: "numeric", timeZone: "UTC" }), repos: month },
      now,
    }),
  );
}

function uniqueRepos(jobs: Job[]): Map<number, string> {
  const repos = new Map<number, string>();
  for (const j of jobs) if (!repos.has(j.repoId)) repos.set(j.repoId, `${j.owner}/${j.repo}`);
  return repos;
}

async function readableRepos(ctx: WebContext, session: Session, repos: Map<number, string>): Promise<Set<number>> {
  const ids = [...repos.keys()];
  const readable = new Set<number>();
  for (let i = 0; i < ids.length; i += PARALLEL) {
    const batch = ids.slice(i, i + PARALLEL);
    const answers = await Promise.all(batch.map((id) => ctx.permission(session, id)));
    answers.forEach((p, k) => p !== "none" && readable.add(batch[k]!));
  }
  return readable;
}
