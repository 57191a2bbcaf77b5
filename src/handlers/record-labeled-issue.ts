import type { Logger } from "pino";
import type { JobStore } from "../store/job-store.js";
import type { Delivery, LabeledIssuePayload } from "./handled-payloads.js";
import { labelNames } from "./label-names.js";

export interface RecordDeps {
  store: JobStore;
  triggerLabel: string;
  defaultBackend: string;
  /** Counts each delivery by what was done with it (the ingress thread passes its counts to the main thread). */
  metrics: { deliveries: { inc(labels: { event: string; outcome: string }): void } };
  log: Logger;
  /** Tells the scheduler there is work; never awaited by the handler. */
  wake(): void;
}

/**
 * `issues.labeled`: if the label is ours and the sender is a person, record a job and return.
 * Nothing here calls GitHub: the delivery is answered as soon as the row is committed, so a
 * burst of labels or a slow API cannot make GitHub give up on a delivery (it waits 10 s and never
 * redelivers by itself). A failed write throws, so Probot answers 500 and the delivery shows as
 * failed and can be redelivered.
 */
export async function recordLabeledIssue(deps: RecordDeps, context: Delivery<LabeledIssuePayload>): Promise<void> {
  const { payload } = context;
  const log = deps.log.child({ deliveryId: context.id, event: "issues.labeled" });
  const count = (outcome: string) => deps.metrics.deliveries.inc({ event: "issues.labeled", outcome });

  // `agent-work` or a size variant such as `agent-work:large`.
  const name = payload.label?.name ?? "";
  const size = name.startsWith(`${deps.triggerLabel}:`) ? name.slice(deps.triggerLabel.length + 1) : undefined;
  if (name !== deps.triggerLabel && !(size && /^[a-z0-9][a-z0-9._-]{0,39}$/i.test(size))) return count("other-label");
  // Bots never trigger work (including this app itself): that is how loops start.
  if (payload.sender.type === "Bot") {
    log.info({ sender: payload.sender.login }, "label added by a bot; ignored");
    return count("bot");
  }
  if (!payload.installation) {
    log.warn("labeled delivery without an installation; is this a GitHub App webhook?");
    return count("no-installation");
  }
  const { issue, repository } = payload;
  const { created, job } = await deps.store.insertReceived(
    {
      deliveryId: context.id,
      installationId: payload.installation.id,
      repoId: repository.id,
      owner: repository.owner.login,
      repo: repository.name,
      number: issue.number,
      kind: issue.pull_request ? "pull_request" : "issue",
      trigger: "label",
      requester: payload.sender.login,
      title: issue.title,
      body: issue.body ?? "",
      cloneUrl: repository.clone_url,
      defaultBranch: repository.default_branch,
      instructions: null,
      options: { ...(size ? { size } : {}), ...labelNames(issue.labels, name) },
      // No earlier comments: nothing to snapshot, and no API call to learn that.
      ...(issue.comments === 0 ? { context: { comments: [], droppedComments: 0 } } : {}),
    },
    { backend: deps.defaultBackend },
  );
  if (!created) {
    log.info({ jobId: job.id }, "delivery seen before; no new job");
    return count("duplicate");
  }
  log.info({ jobId: job.id, repo: repository.full_name, issue: issue.number, sender: payload.sender.login }, "job recorded");
  count("recorded");
  deps.wake();
}
