import type { PipelineDeps } from "./deps.js";
import type { OutboxEntry } from "../store/outbox-store.js";
import { StatusPublisher } from "./status-publisher.js";
import { revokeKeptWorkerToken } from "./worker-token-at-rest.js";
import { billWorker } from "./bill-worker.js";

/** Rows one sweep takes; the next pass takes the rest. */
const SWEEP_BATCH = 20;

/** The hidden marker that finds an outbox comment again after a delivery whose answer was lost. */
export function effectMarker(key: string): string {
  return `<!-- agent-work:effect=${key} -->`;
}

/**
 * Delivers outbox rows: `keys` just written by this process (delivered at once, so the 👀 or a
 * reply does not wait for a pass), or `"sweep"`: every row nobody holds, which is what a process
 * that died after writing them left. Never throws: a failed delivery keeps its lease until it
 * expires, and a later sweep tries again.
 */
export async function deliverOutbox(deps: PipelineDeps, which: readonly string[] | "sweep"): Promise<{ delivered: number; failed: number }> {
  const leaseMs = deps.config.leaseSeconds * 1000;
  const entries: OutboxEntry[] = [];
  try {
    if (which === "sweep") entries.push(...(await deps.outbox.claim(deps.owner, leaseMs, SWEEP_BATCH)));
    else for (const key of which) entries.push(...[await deps.outbox.begin(key, deps.owner, leaseMs)].filter((e): e is OutboxEntry => e !== undefined));
  } catch (err) {
    deps.log.warn({ err }, "could not read the outbox; the next pass tries again");
    return { delivered: 0, failed: 0 };
  }
  let delivered = 0;
  let failed = 0;
  for (const entry of entries) {
    const log = deps.log.child({ outboxKey: entry.key, ...(entry.jobId ? { jobId: entry.jobId } : {}) });
    try {
      await deliverEffect(deps, entry);
      await deps.outbox.finish(entry.key, deps.owner);
      delivered += 1;
      if (which === "sweep") log.info({ tries: entry.tries }, "delivered an effect a stopped process left");
    } catch (err) {
      failed += 1;
      log.warn({ err, tries: entry.tries }, "could not deliver an outbox effect; a later sweep tries again");
      await deps.outbox.failed(entry.key, deps.redactor.redact(err instanceof Error ? err.message : String(err))).catch(() => undefined);
    }
  }
  return { delivered, failed };
}

async function deliverEffect(deps: PipelineDeps, entry: OutboxEntry): Promise<void> {
  const effect = entry.effect;
  switch (effect.kind) {
    case "reaction": {
      // GitHub keeps one reaction per person and content: a second create answers 200 with the first.
      const octokit = await deps.github.forInstallation(entry.installationId);
      const { owner, repo } = effect;
      if (effect.reviewCommentId)
        await octokit.rest.reactions.createForPullRequestReviewComment({ owner, repo, comment_id: effect.reviewCommentId, content: "eyes" });
      else if (effect.commentId) await octokit.rest.reactions.createForIssueComment({ owner, repo, comment_id: effect.commentId, content: "eyes" });
      else await octokit.rest.reactions.createForIssue({ owner, repo, issue_number: effect.issueNumber, content: "eyes" });
      return;
    }
    case "comment": {
      const octokit = await deps.github.forInstallation(entry.installationId);
      const { owner, repo, issueNumber } = effect;
      const marker = effectMarker(entry.key);
      if (entry.tries > 1) {
        // An earlier try may have posted it and died before hearing so. Only comments written
        // since the row was (less ten minutes for clock skew) can be it.
        const since = new Date(entry.createdAt - 600_000).toISOString();
        const comments = await octokit.paginate(octokit.rest.issues.listComments, { owner, repo, issue_number: issueNumber, since, per_page: 100 });
        if (comments.some((c) => c.body?.includes(marker))) return;
      }
      await octokit.rest.issues.createComment({ owner, repo, issue_number: issueNumber, body: deps.redactor.redact(`${effect.body}\n\n${marker}`) });
      return;
    }
    case "review-reply": {
      const octokit = await deps.github.forInstallation(entry.installationId);
      const { owner, repo, pullNumber, commentId } = effect;
      const marker = effectMarker(entry.key);
      if (entry.tries > 1) {
        const since = new Date(entry.createdAt - 600_000).toISOString();
        const comments = await octokit.paginate(octokit.rest.pulls.listReviewComments, { owner, repo, pull_number: pullNumber, since, per_page: 100 });
        if (comments.some((c) => c.body?.includes(marker))) return;
      }
      await octokit.rest.pulls.createReplyForReviewComment({
        owner,
        repo,
        pull_number: pullNumber,
        comment_id: commentId,
        body: deps.redactor.redact(`${effect.body}\n\n${marker}`),
      });
      return;
    }
    case "bill": {
      const job = await deps.store.get(effect.jobId);
      const entry = job ? await deps.ledger.get(job.id) : undefined;
      // Only a reservation still open: a job its runner finished billing has nothing left here.
      if (!job || entry?.state !== "reserved") return;
      if (effect.worker) await billWorker(deps, job, effect.worker, effect.endedAt);
      await deps.ledger.finalize(job.id);
      return;
    }
    case "revoke-token":
      await revokeKeptWorkerToken(deps, effect.jobId, deps.log.child({ jobId: effect.jobId }));
      return;
    case "final-status": {
      const job = await deps.store.get(effect.jobId);
      if (!job) return;
      const octokit = await deps.github.forInstallation(entry.installationId);
      await new StatusPublisher(deps, octokit, job.id).flush();
      return;
    }
  }
}
