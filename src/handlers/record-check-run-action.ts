import type { RequestStore } from "../store/request-store.js";
import type { RecordDeps } from "./record-labeled-issue.js";
import { CHECK_NAME } from "../pipeline/ensure-status-surfaces.js";
import type { CheckRunActionPayload, Delivery } from "./handled-payloads.js";

/**
 * The check run's buttons (`requested_action`: cancel / retry) and "Re-run" (`rerequested`):
 * recorded as requests for the job the check run belongs to (its `external_id`). Only check runs
 * this app created count; the sender's permission is checked when the request is answered.
 */
export async function recordCheckRunAction(
  deps: RecordDeps & { requests: RequestStore; appId: number },
  context: Delivery<CheckRunActionPayload>,
): Promise<void> {
  const { payload } = context;
  const event = `check_run.${payload.action}`;
  const log = deps.log.child({ deliveryId: context.id, event });
  const count = (outcome: string) => deps.metrics.deliveries.inc({ event, outcome });
  const run = payload.check_run;
  if (run.app?.id !== deps.appId || run.name !== CHECK_NAME) return count("not-ours");
  if (payload.sender.type === "Bot") return count("bot");
  if (!payload.installation) return count("no-installation");
  const job = run.external_id ? await deps.store.get(run.external_id) : undefined;
  if (!job) {
    log.info({ externalId: run.external_id }, "check run of an unknown job; ignored");
    return count("unknown-job");
  }
  const identifier = payload.action === "requested_action" ? payload.requested_action?.identifier : "retry";
  if (identifier !== "cancel" && identifier !== "retry") return count("unknown-action");
  await deps.requests.insert({
    deliveryId: context.id,
    installationId: payload.installation.id,
    repoId: job.repoId,
    owner: job.owner,
    repo: job.repo,
    number: job.number,
    kind: job.kind,
    source: "check_run",
    verb: identifier === "cancel" ? "stop" : "retry",
    sender: payload.sender.login,
    args: { jobId: job.id },
  });
  log.info({ jobId: job.id, identifier }, "check run action recorded");
  count(`action-${identifier}`);
  deps.wake();
}
