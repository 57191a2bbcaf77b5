import { z } from "zod";

/**
 * What each handler reads from its delivery, as a schema: the ingress (src/ingress/) checks a signed
 * payload against it before Probot sees it, and answers 400 with the reason when a field is
 * missing, null or of the wrong type, so a malformed delivery is refused instead of throwing in a
 * handler (a 500) or storing a string where a number belongs. The handlers are typed by these
 * schemas, not by Octokit's payload types: a field a handler starts to read must be added here, or
 * it does not compile.
 *
 * Only the fields the handlers use are listed; the rest of GitHub's payload is neither required nor
 * kept (zod drops unknown keys). Optional here means the handler copes with its absence.
 */

const id = z.number().int().positive().lte(Number.MAX_SAFE_INTEGER);
const name = z.string().min(1).max(255);

const sender = z.object({ login: name, type: z.string().max(64) });
/** Absent on deliveries that are not a GitHub App's; the handlers ignore those. */
const installation = z.object({ id }).nullish();

const repository = z.object({
  id,
  name,
  full_name: z.string().min(1).max(512),
  owner: z.object({ login: name }),
  clone_url: z.url().max(2048),
  default_branch: z.string().min(1).max(255),
});

/** An issue's or pull request's labels: routing rules (ROUTING_RULES) match on their names. */
const labels = z
  .array(z.object({ name: z.string().max(255) }))
  .max(100)
  .nullish();

const issue = z.object({
  number: id,
  title: z.string().max(1024),
  body: z.string().nullish(),
  comments: z.number().int().nonnegative(),
  /** Present (an object) when the issue is a pull request. */
  pull_request: z.looseObject({}).nullish(),
  labels,
});

export const labeledIssuePayload = z.object({
  action: z.literal("labeled"),
  label: z.object({ name: z.string().max(255) }).nullish(),
  sender,
  installation,
  issue,
  repository,
});

export const commentCreatedPayload = z.object({
  action: z.literal("created"),
  comment: z.object({
    id,
    body: z.string(),
    user: z.object({ type: z.string().max(64) }).nullish(),
  }),
  sender,
  installation,
  issue,
  repository,
});

export const checkRunActionPayload = z.object({
  action: z.enum(["requested_action", "rerequested"]),
  check_run: z.object({
    name: z.string().max(255),
    external_id: z.string().max(255).nullish(),
    app: z.object({ id }).nullish(),
  }),
  requested_action: z.object({ identifier: z.string().max(255) }).nullish(),
  sender,
  installation,
});

/** The pull request as a review delivery carries it: what a job on it needs before intake looks it up. */
const reviewedPullRequest = z.object({
  number: id,
  title: z.string().max(1024),
  body: z.string().nullish(),
  labels,
});

/** Who wrote a review or a review comment; absent for a deleted account ("ghost"). */
const author = z.object({ login: name, type: z.string().max(64) }).nullish();

/** An inline comment on a line of a pull request's diff (`pull_request_review_comment.created`). */
export const reviewCommentCreatedPayload = z.object({
  action: z.literal("created"),
  comment: z.object({
    id,
    body: z.string(),
    user: author,
    /** The review it was submitted with (a lone comment is a review of its own). */
    pull_request_review_id: id.nullish(),
    /** Set on a reply: the first comment of the thread, which is where GitHub takes replies. */
    in_reply_to_id: id.nullish(),
  }),
  pull_request: reviewedPullRequest,
  sender,
  installation,
  repository,
});

/** A submitted review, whose body may be an `/agent` command (`pull_request_review.submitted`). */
export const reviewSubmittedPayload = z.object({
  action: z.literal("submitted"),
  review: z.object({
    id,
    body: z.string().nullish(),
    user: author,
  }),
  pull_request: reviewedPullRequest,
  sender,
  installation,
  repository,
});

export type LabeledIssuePayload = z.infer<typeof labeledIssuePayload>;
export type ReviewCommentCreatedPayload = z.infer<typeof reviewCommentCreatedPayload>;
export type ReviewSubmittedPayload = z.infer<typeof reviewSubmittedPayload>;
export type CommentCreatedPayload = z.infer<typeof commentCreatedPayload>;
export type CheckRunActionPayload = z.infer<typeof checkRunActionPayload>;

/** `<event>.<action>` → the schema of what its handler reads. */
export const handledPayloads = {
  "issues.labeled": labeledIssuePayload,
  "issue_comment.created": commentCreatedPayload,
  "check_run.requested_action": checkRunActionPayload,
  "check_run.rerequested": checkRunActionPayload,
  "pull_request_review_comment.created": reviewCommentCreatedPayload,
  "pull_request_review.submitted": reviewSubmittedPayload,
} as const;

export type HandledEvent = keyof typeof handledPayloads;
export type HandledPayload<E extends HandledEvent> = z.infer<(typeof handledPayloads)[E]>;

/** One delivery as a handler sees it: its id and the fields its schema lets through. */
export interface Delivery<P> {
  id: string;
  payload: P;
}

/**
 * Checks a delivery a handler will see (an event and action listed above); any other passes, since
 * no handler reads it. The reason names the fields and what was wrong with them, never their values.
 */
export function checkHandledPayload(
  event: string,
  payload: Record<string, unknown>,
): { ok: true; handled?: { key: HandledEvent; payload: unknown } } | { ok: false; reason: string } {
  const key = `${event}.${String(payload.action)}`;
  if (!Object.hasOwn(handledPayloads, key)) return { ok: true };
  const result = handledPayloads[key as HandledEvent].safeParse(payload);
  // What the handler reads, already parsed: it is handed on, not parsed a second time.
  if (result.success) return { ok: true, handled: { key: key as HandledEvent, payload: result.data } };
  const problems = result.error.issues.slice(0, 5).map((issue) => `${issue.path.join(".") || "payload"}: ${issue.message}`);
  return { ok: false, reason: `${key} payload: ${problems.join("; ")}`.slice(0, 500) };
}

export function handledDelivery<E extends HandledEvent>(event: E, context: { id: string; payload: unknown }): Delivery<z.infer<(typeof handledPayloads)[E]>> {
  return { id: context.id, payload: handledPayloads[event].parse(context.payload) as z.infer<(typeof handledPayloads)[E]> };
}
