import { parseCommand } from "../commands/parse-command.js";
import type { RequestStore, RequestVerb } from "../store/request-store.js";
import type { RecordDeps } from "./record-labeled-issue.js";
import { labelNames } from "./label-names.js";
import type { CommentCreatedPayload, Delivery } from "./handled-payloads.js";

/**
 * `issue_comment.created` (edits are not subscribed to: an edited comment never triggers): if its
 * first line is an `/agent` command from a person, record it — `run` as a job, everything else as
 * a request — and return. Like every handler, no GitHub call on the request path.
 */
export async function recordCommentCommand(deps: RecordDeps & { requests: RequestStore }, context: Delivery<CommentCreatedPayload>): Promise<void> {
  const { payload } = context;
  const log = deps.log.child({ deliveryId: context.id, event: "issue_comment.created" });
  const count = (outcome: string) => deps.metrics.deliveries.inc({ event: "issue_comment.created", outcome });

  const parsed = parseCommand(payload.comment.body);
  if (!parsed) return count("not-a-command");
  if (payload.sender.type === "Bot" || payload.comment.user?.type === "Bot") {
    log.info({ sender: payload.sender.login }, "command from a bot; ignored");
    return count("bot");
  }
  if (!payload.installation) return count("no-installation");
  const { issue, repository, comment } = payload;
  const target = {
    installationId: payload.installation.id,
    repoId: repository.id,
    owner: repository.owner.login,
    repo: repository.name,
    number: issue.number,
    kind: issue.pull_request ? ("pull_request" as const) : ("issue" as const),
  };

  if (parsed.ok && (parsed.verb === "run" || parsed.verb === "ask")) {
    const { created, job } = await deps.store.insertReceived(
      {
        ...target,
        deliveryId: context.id,
        trigger: "command",
        requester: payload.sender.login,
        title: issue.title,
        body: issue.body ?? "",
        cloneUrl: repository.clone_url,
        defaultBranch: repository.default_branch,
        instructions: parsed.instructions || null,
        options: {
          ...parsed.flags,
          commandLine: parsed.line.slice(0, 300),
          ...(parsed.verb === "ask" ? { ask: true as const } : {}),
          ...labelNames(issue.labels),
        },
        triggerCommentId: comment.id,
        // Only the command itself: nothing earlier to snapshot, and no API call to learn that.
        ...(issue.comments <= 1 ? { context: { comments: [], droppedComments: 0 } } : {}),
      },
      { backend: deps.defaultBackend },
    );
    log.info({ jobId: job.id, created }, created ? `job recorded from /agent ${parsed.verb}` : "delivery seen before; no new job");
    count(created ? "recorded" : "duplicate");
  } else {
    const verb: RequestVerb = parsed.ok ? (parsed.verb as RequestVerb) : parsed.error === "unknown_verb" ? "unknown" : "bad_flag";
    const args = parsed.ok
      ? { commentId: comment.id, line: parsed.line.slice(0, 300) }
      : parsed.error === "unknown_verb"
        ? { commentId: comment.id, line: parsed.line.slice(0, 300), word: parsed.word, ...(parsed.suggestion ? { suggestion: parsed.suggestion } : {}) }
        : { commentId: comment.id, line: parsed.line.slice(0, 300), message: parsed.message };
    const { created } = await deps.requests.insert({ ...target, deliveryId: context.id, source: "comment", verb, sender: payload.sender.login, args });
    log.info({ verb, created }, created ? "command recorded" : "delivery seen before");
    count(created ? `command-${verb}` : "duplicate");
  }
  deps.wake();
}
