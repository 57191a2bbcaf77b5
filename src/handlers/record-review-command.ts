import { parseCommand } from "../commands/parse-command.js";
import type { RequestStore, RequestVerb } from "../store/request-store.js";
import type { JobOptions } from "../jobs/types.js";
import type { RecordDeps } from "./record-labeled-issue.js";
import { labelNames } from "./label-names.js";
import type { Delivery, ReviewCommentCreatedPayload, ReviewSubmittedPayload } from "./handled-payloads.js";

type ReviewEvent = "pull_request_review_comment.created" | "pull_request_review.submitted";

/**
 * A review (`pull_request_review.submitted`) or an inline review comment
 * (`pull_request_review_comment.created`) whose first line is an `/agent` command. `run` becomes a
 * job on the pull request that carries the review's ids: intake puts the review's comments (file,
 * line, diff hunk, text; only their authors with write access) into the prompt, and the end of the
 * job is answered in their threads. Every other command is a request, answered on the pull
 * request's conversation. As every handler: no GitHub call here; bots are ignored.
 */
export async function recordReviewCommand(
  deps: RecordDeps & { requests: RequestStore },
  event: ReviewEvent,
  context: Delivery<ReviewCommentCreatedPayload | ReviewSubmittedPayload>,
): Promise<void> {
  const { payload } = context;
  const log = deps.log.child({ deliveryId: context.id, event });
  const count = (outcome: string) => deps.metrics.deliveries.inc({ event, outcome });
  const written = "comment" in payload ? payload.comment : payload.review;
  const parsed = parseCommand(written.body);
  if (!parsed) return count("not-a-command");
  if (payload.sender.type === "Bot" || written.user?.type === "Bot") {
    log.info({ sender: payload.sender.login }, "command from a bot; ignored");
    return count("bot");
  }
  if (!payload.installation) return count("no-installation");
  const { pull_request: pr, repository } = payload;
  const target = {
    installationId: payload.installation.id,
    repoId: repository.id,
    owner: repository.owner.login,
    repo: repository.name,
    number: pr.number,
    kind: "pull_request" as const,
  };
  const review: NonNullable<JobOptions["review"]> | null =
    "comment" in payload
      ? payload.comment.pull_request_review_id
        ? { reviewId: payload.comment.pull_request_review_id, commentId: payload.comment.id, threadId: payload.comment.in_reply_to_id ?? payload.comment.id }
        : null
      : { reviewId: payload.review.id };
  if (!review) return count("no-review");

  if (parsed.ok && (parsed.verb === "run" || parsed.verb === "ask")) {
    const { created, job } = await deps.store.insertReceived(
      {
        ...target,
        deliveryId: context.id,
        trigger: "command",
        requester: payload.sender.login,
        title: pr.title,
        body: pr.body ?? "",
        cloneUrl: repository.clone_url,
        defaultBranch: repository.default_branch,
        instructions: parsed.instructions || null,
        options: {
          ...parsed.flags,
          commandLine: parsed.line.slice(0, 300),
          review,
          ...(parsed.verb === "ask" ? { ask: true as const } : {}),
          ...labelNames(pr.labels),
        },
      },
      { backend: deps.defaultBackend },
    );
    log.info({ jobId: job.id, created, reviewId: review.reviewId }, created ? "job recorded from a review" : "delivery seen before; no new job");
    count(created ? "recorded" : "duplicate");
  } else {
    // Answered on the pull request's conversation: a review comment is not an issue comment, so
    // there is no comment id to react to there.
    const verb: RequestVerb = parsed.ok ? (parsed.verb as RequestVerb) : parsed.error === "unknown_verb" ? "unknown" : "bad_flag";
    const args = parsed.ok
      ? { line: parsed.line.slice(0, 300) }
      : parsed.error === "unknown_verb"
        ? { line: parsed.line.slice(0, 300), word: parsed.word, ...(parsed.suggestion ? { suggestion: parsed.suggestion } : {}) }
        : { line: parsed.line.slice(0, 300), message: parsed.message };
    const { created } = await deps.requests.insert({ ...target, deliveryId: context.id, source: "comment", verb, sender: payload.sender.login, args });
    log.info({ verb, created }, created ? "command recorded" : "delivery seen before");
    count(created ? `command-${verb}` : "duplicate");
  }
  deps.wake();
}
