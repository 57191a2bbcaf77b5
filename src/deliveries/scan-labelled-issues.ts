import type { Logger } from "pino";
import type { GitHub, GitHubAccess } from "../github/types.js";
import type { JobStore } from "../store/job-store.js";
import type { DeliveryAskStore } from "../store/delivery-asks.js";
import { errorSummary } from "./redeliver-missed.js";
import { labelNames } from "../handlers/label-names.js";

export interface ScanLimits {
  /** Pages of 100 installations. */
  maxInstallationPages: number;
  /** Pages of 100 repositories per installation. */
  maxRepoPagesPerInstallation: number;
  /** Repositories whose labelled issues are listed, per pass, all installations together. */
  maxRepos: number;
  /** Issues whose label history is read (one or a few calls each), per pass. */
  maxLabelLookups: number;
  /** Jobs recorded per pass. */
  maxRecords: number;
  /** A label older than this is not turned into a job (a stale label is not a request). */
  maxAgeMs: number;
}

export const DEFAULT_SCAN_LIMITS: Omit<ScanLimits, "maxAgeMs"> = {
  maxInstallationPages: 10,
  maxRepoPagesPerInstallation: 10,
  maxRepos: 1000,
  maxLabelLookups: 200,
  maxRecords: 50,
};

export interface ScanDeps {
  github: GitHubAccess;
  asks: DeliveryAskStore;
  store: JobStore;
  triggerLabel: string;
  defaultBackend: string;
  log: Logger;
  now: () => number;
  limits: ScanLimits;
  /** Tells the scheduler there is work. */
  wake(): void;
}

export interface ScanReport {
  installations: number;
  repos: number;
  /** Open issues and pull requests found carrying the trigger label. */
  scanned: number;
  withJob: number;
  /** Labelled inside the window the deliveries list covers: redelivery is what brings those back. */
  covered: number;
  tooOld: number;
  byBot: number;
  recorded: number;
  /** Everything was looked at (no cap hit, no call failed). */
  complete: boolean;
}

const MAX_EVENT_PAGES = 5;

/**
 * The fallback for what the deliveries list no longer covers (GitHub keeps deliveries ~3 days):
 * every open issue or pull request that carries the trigger label, in every installation, that
 * has never had a job and was labelled before `labelledBefore`, is recorded as a `received` job,
 * the row the label's webhook handler would have written, with the person who added the label as
 * requester. Intake then authorises and answers as for any label. Keyed by the label event's id,
 * so two passes or two replicas record one job for one labelling.
 */
export async function scanLabelledIssues(deps: ScanDeps, labelledBefore: number): Promise<ScanReport> {
  const report: ScanReport = { installations: 0, repos: 0, scanned: 0, withJob: 0, covered: 0, tooOld: 0, byBot: 0, recorded: 0, complete: true };
  const { limits } = deps;
  let reposLeft = limits.maxRepos;
  let lookupsLeft = limits.maxLabelLookups;
  let recordsLeft = limits.maxRecords;
  const app = await deps.github.asApp();

  const installations = await pages(
    limits.maxInstallationPages,
    (page) => app.request("GET /app/installations", { per_page: 100, page }),
    (data) => data,
  );
  if (installations.truncated) report.complete = false;
  for (const installation of installations.items) {
    if (installation.suspended_at) continue;
    report.installations += 1;
    let octokit: GitHub;
    let repos: Awaited<ReturnType<typeof listRepos>>;
    try {
      octokit = await deps.github.forInstallation(installation.id);
      repos = await listRepos(octokit, limits.maxRepoPagesPerInstallation);
    } catch (err) {
      report.complete = false;
      deps.log.warn({ installationId: installation.id, err: errorSummary(err) }, "label scan could not list an installation's repositories");
      continue;
    }
    if (repos.truncated) report.complete = false;
    for (const repo of repos.items) {
      const repoId = Number(repo.id);
      // A repository with no open issue or pull request has nothing labelled: no call needed.
      if (repo.archived || !repo.open_issues_count) continue;
      if (reposLeft <= 0) {
        report.complete = false;
        break;
      }
      reposLeft -= 1;
      report.repos += 1;
      try {
        const issues = await pages(
          3,
          (page) =>
            octokit.request("GET /repos/{owner}/{repo}/issues", {
              owner: repo.owner.login,
              repo: repo.name,
              labels: deps.triggerLabel,
              state: "open",
              per_page: 100,
              page,
            }),
          (data) => data,
        );
        if (issues.truncated) report.complete = false;
        for (const issue of issues.items) {
          report.scanned += 1;
          if (await deps.asks.hasJobFor(repoId, issue.number)) {
            report.withJob += 1;
            continue;
          }
          // A label delivery of this issue is being redelivered: its job comes that way.
          if (await deps.asks.redeliveryPendingFor(repoId, issue.number)) {
            report.covered += 1;
            continue;
          }
          if (lookupsLeft <= 0) {
            report.complete = false;
            continue;
          }
          lookupsLeft -= 1;
          const labelling = await lastLabelling(octokit, repo.owner.login, repo.name, issue.number, deps.triggerLabel);
          if (!labelling) {
            // Its history is longer than we read, or the label came without an event: next time.
            report.complete = false;
            continue;
          }
          if (labelling.at >= labelledBefore) {
            report.covered += 1;
            continue;
          }
          if (labelling.at < deps.now() - limits.maxAgeMs) {
            report.tooOld += 1;
            continue;
          }
          if (labelling.actorType === "Bot") {
            report.byBot += 1;
            continue;
          }
          if (recordsLeft <= 0) {
            report.complete = false;
            continue;
          }
          recordsLeft -= 1;
          const { created, job } = await deps.store.insertReceived(
            {
              deliveryId: `scan:${repoId}:${issue.number}:${labelling.eventId}`,
              installationId: installation.id,
              repoId,
              owner: repo.owner.login,
              repo: repo.name,
              number: issue.number,
              kind: issue.pull_request ? "pull_request" : "issue",
              trigger: "label",
              requester: labelling.actor,
              title: issue.title,
              body: issue.body ?? "",
              cloneUrl: repo.clone_url,
              defaultBranch: repo.default_branch,
              instructions: null,
              options: labelNames(issue.labels.flatMap((l) => (typeof l === "string" ? [{ name: l }] : l.name ? [{ name: l.name }] : []))),
              ...(issue.comments === 0 ? { context: { comments: [], droppedComments: 0 } } : {}),
            },
            { backend: deps.defaultBackend },
          );
          if (created) {
            report.recorded += 1;
            deps.log.info(
              {
                jobId: job.id,
                repo: `${repo.owner.login}/${repo.name}`,
                issue: issue.number,
                labelledAt: new Date(labelling.at).toISOString(),
                requester: labelling.actor,
              },
              "job recorded from a label whose delivery was lost",
            );
          }
        }
      } catch (err) {
        report.complete = false;
        deps.log.warn({ repo: `${repo.owner.login}/${repo.name}`, err: errorSummary(err) }, "label scan could not read a repository's labelled issues");
      }
    }
  }
  if (report.recorded > 0) deps.wake();
  return report;
}

async function listRepos(octokit: GitHub, maxPages: number) {
  return pages(
    maxPages,
    (page) => octokit.request("GET /installation/repositories", { per_page: 100, page }),
    (data) => data.repositories,
  );
}

/** The latest time the trigger label was added, by whom, and that event's id. */
async function lastLabelling(octokit: GitHub, owner: string, repo: string, number: number, label: string) {
  const events = await pages(
    MAX_EVENT_PAGES,
    (page) => octokit.request("GET /repos/{owner}/{repo}/issues/{issue_number}/events", { owner, repo, issue_number: number, per_page: 100, page }),
    (data) => data,
  );
  // Oldest first; an issue with more history than we read is left for a later pass.
  if (events.truncated) return undefined;
  for (let i = events.items.length - 1; i >= 0; i--) {
    const event = events.items[i]! as {
      id: number;
      event: string;
      created_at: string;
      label?: { name?: string };
      actor?: { login?: string; type?: string } | null;
    };
    if (event.event !== "labeled" || event.label?.name !== label || !event.actor?.login) continue;
    const at = Date.parse(event.created_at);
    if (!Number.isFinite(at)) return undefined;
    return { eventId: event.id, at, actor: event.actor.login, actorType: event.actor.type ?? "User" };
  }
  return undefined;
}

/** Reads numbered pages until GitHub's Link header has no next page, or `maxPages`. */
async function pages<R extends { data: unknown; headers: { link?: string } }, T>(
  maxPages: number,
  fetchPage: (page: number) => Promise<R>,
  itemsOf: (data: R["data"]) => T[],
): Promise<{ items: T[]; truncated: boolean }> {
  const items: T[] = [];
  for (let page = 1; page <= maxPages; page++) {
    const res = await fetchPage(page);
    const got = itemsOf(res.data);
    items.push(...got);
    if (got.length === 0 || !hasNext(res.headers.link)) return { items, truncated: false };
  }
  return { items, truncated: true };
}

function hasNext(link: string | undefined): boolean {
  return /rel="next"/.test(link ?? "");
}
