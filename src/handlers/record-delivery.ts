import type { RequestStore } from "../store/request-store.js";
import { recordLabeledIssue, type RecordDeps } from "./record-labeled-issue.js";
import { recordCommentCommand } from "./record-comment-command.js";
import { recordCheckRunAction } from "./record-check-run-action.js";
import { recordReviewCommand } from "./record-review-command.js";
import type { Delivery, HandledEvent, HandledPayload } from "./handled-payloads.js";

export interface RecorderDeps extends RecordDeps {
  requests: RequestStore;
  appId: number;
}

/** Records a checked delivery with the handler for its event. */
export type RecordDelivery = <E extends HandledEvent>(event: E, delivery: Delivery<HandledPayload<E>>) => Promise<void>;

/**
 * The handlers, by the event they record: one table for the main thread (Probot's `app.on`, the
 * in-thread ingress) and the ingress thread (src/ingress/ingress-thread.ts), which records a
 * delivery on its own connection to the store. No handler calls GitHub or reads the scheduler:
 * each writes a row and calls `wake`.
 */
export function deliveryRecorder(deps: RecorderDeps): RecordDelivery {
  const { requests, appId, ...recordDeps } = deps;
  const withRequests = { ...recordDeps, requests };
  const handlers: { [E in HandledEvent]: (delivery: Delivery<HandledPayload<E>>) => Promise<void> } = {
    "issues.labeled": (d) => recordLabeledIssue(recordDeps, d),
    "issue_comment.created": (d) => recordCommentCommand(withRequests, d),
    "pull_request_review_comment.created": (d) => recordReviewCommand(withRequests, "pull_request_review_comment.created", d),
    "pull_request_review.submitted": (d) => recordReviewCommand(withRequests, "pull_request_review.submitted", d),
    "check_run.requested_action": (d) => recordCheckRunAction({ ...withRequests, appId }, d),
    "check_run.rerequested": (d) => recordCheckRunAction({ ...withRequests, appId }, d),
  };
  return (event, delivery) => handlers[event](delivery);
}
