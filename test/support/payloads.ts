import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { sign } from "@octokit/webhooks-methods";

const labeled = JSON.parse(readFileSync(new URL("../fixtures/issues.labeled.json", import.meta.url), "utf8"));

export const INSTALLATION_ID = 4242;
export const OWNER = labeled.repository.owner.login as string; // Codertocat
export const REPO = labeled.repository.name as string; // Hello-World
export const REPO_ID = labeled.repository.id as number;
export const DEFAULT_BRANCH = labeled.repository.default_branch as string; // master

/** The recorded `issues.labeled` payload, adapted: our label, an installation, a local clone URL. */
export function labeledPayload(over: {
  label?: string;
  sender?: string;
  senderType?: "User" | "Bot";
  number?: number;
  title?: string;
  body?: string;
  /** The issue's labels besides the one just added (GitHub lists that one too). */
  labels?: string[];
  cloneUrl: string;
}): Record<string, any> {
  const p = structuredClone(labeled);
  p.label.name = over.label ?? "agent-work";
  if (over.labels !== undefined) p.issue.labels = [...over.labels, p.label.name].map((name, i) => ({ id: 1000 + i, name, color: "ededed", default: false }));
  p.sender.login = over.sender ?? p.sender.login;
  p.sender.type = over.senderType ?? "User";
  if (over.number !== undefined) p.issue.number = over.number;
  if (over.title !== undefined) p.issue.title = over.title;
  if (over.body !== undefined) p.issue.body = over.body;
  p.repository.clone_url = over.cloneUrl;
  p.installation = { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  return p;
}

/** POSTs a delivery signed with the real secret, as GitHub would. */
export async function deliver(
  baseUrl: string,
  secret: string,
  event: string,
  payload: unknown,
  deliveryId: string = randomUUID(),
): Promise<{ status: number; deliveryId: string; ms: number }> {
  const body = JSON.stringify(payload);
  const started = performance.now();
  const res = await fetch(`${baseUrl}/api/github/webhooks`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": deliveryId,
      "x-hub-signature-256": await sign(secret, body),
    },
    body,
  });
  await res.text();
  return { status: res.status, deliveryId, ms: performance.now() - started };
}

const commented = JSON.parse(readFileSync(new URL("../fixtures/issue_comment.created.json", import.meta.url), "utf8"));
const actioned = JSON.parse(readFileSync(new URL("../fixtures/check_run.requested_action.json", import.meta.url), "utf8"));
const rerequested = JSON.parse(readFileSync(new URL("../fixtures/check_run.rerequested.json", import.meta.url), "utf8"));

/** The recorded `issue_comment.created` payload, adapted to our repository and installation. */
export function commentPayload(over: {
  body: string;
  cloneUrl: string;
  sender?: string;
  senderType?: "User" | "Bot";
  number?: number;
  pullRequest?: boolean;
  commentId?: number;
  earlierComments?: number;
  title?: string;
  issueBody?: string;
}): Record<string, any> {
  const p = structuredClone(commented);
  const repo = labeledPayload({ cloneUrl: over.cloneUrl });
  p.repository = repo.repository;
  p.installation = repo.installation;
  p.issue = structuredClone(repo.issue);
  if (over.number !== undefined) p.issue.number = over.number;
  if (over.title !== undefined) p.issue.title = over.title;
  if (over.issueBody !== undefined) p.issue.body = over.issueBody;
  p.issue.comments = (over.earlierComments ?? 0) + 1;
  if (over.pullRequest) p.issue.pull_request = { url: `https://api.github.com/repos/${OWNER}/${REPO}/pulls/${p.issue.number}` };
  p.comment.body = over.body;
  p.comment.id = over.commentId ?? Math.floor(Math.random() * 1e9);
  p.sender.login = over.sender ?? p.sender.login;
  p.sender.type = over.senderType ?? "User";
  p.comment.user.login = p.sender.login;
  p.comment.user.type = p.sender.type;
  return p;
}

/** The recorded check_run payloads (`requested_action` / `rerequested`), for our app's check run of `jobId`. */
export function checkRunPayload(over: {
  action: "requested_action" | "rerequested";
  jobId: string;
  identifier?: string;
  appId: number;
  sender?: string;
  senderType?: "User" | "Bot";
}): Record<string, any> {
  const p = structuredClone(over.action === "requested_action" ? actioned : rerequested);
  const repo = labeledPayload({ cloneUrl: "https://example.invalid/x.git" });
  p.repository = repo.repository;
  p.installation = repo.installation;
  p.check_run.app.id = over.appId;
  p.check_run.name = "agent-work";
  p.check_run.external_id = over.jobId;
  if (over.action === "requested_action") p.requested_action = { identifier: over.identifier ?? "cancel" };
  p.sender.login = over.sender ?? p.sender.login;
  p.sender.type = over.senderType ?? "User";
  return p;
}

const reviewCommented = JSON.parse(readFileSync(new URL("../fixtures/pull_request_review_comment.created.json", import.meta.url), "utf8"));
const reviewSubmitted = JSON.parse(readFileSync(new URL("../fixtures/pull_request_review.submitted.json", import.meta.url), "utf8"));

/** Fields both review payloads share: our repository and installation, the PR's number and who sent it. */
function adaptReview(p: Record<string, any>, over: { cloneUrl: string; number?: number; sender?: string; senderType?: "User" | "Bot" }) {
  const repo = labeledPayload({ cloneUrl: over.cloneUrl });
  p.repository = repo.repository;
  p.installation = repo.installation;
  if (over.number !== undefined) p.pull_request.number = over.number;
  p.sender.login = over.sender ?? p.sender.login;
  p.sender.type = over.senderType ?? "User";
}

/** The recorded `pull_request_review_comment.created` payload: an inline comment on a line of the diff. */
export function reviewCommentPayload(over: {
  body: string;
  cloneUrl: string;
  number?: number;
  sender?: string;
  senderType?: "User" | "Bot";
  commentId?: number;
  reviewId?: number;
  inReplyTo?: number;
  path?: string;
  line?: number;
  diffHunk?: string;
}): Record<string, any> {
  const p = structuredClone(reviewCommented);
  adaptReview(p, over);
  p.comment.body = over.body;
  p.comment.id = over.commentId ?? p.comment.id;
  p.comment.pull_request_review_id = over.reviewId ?? p.comment.pull_request_review_id;
  if (over.inReplyTo !== undefined) p.comment.in_reply_to_id = over.inReplyTo;
  if (over.path !== undefined) p.comment.path = over.path;
  if (over.line !== undefined) p.comment.line = over.line;
  if (over.diffHunk !== undefined) p.comment.diff_hunk = over.diffHunk;
  p.comment.user.login = p.sender.login;
  p.comment.user.type = p.sender.type;
  return p;
}

/** The recorded `pull_request_review.submitted` payload, with `body` as the review's text. */
export function reviewPayload(over: {
  body: string | null;
  cloneUrl: string;
  number?: number;
  sender?: string;
  senderType?: "User" | "Bot";
  reviewId?: number;
}): Record<string, any> {
  const p = structuredClone(reviewSubmitted);
  adaptReview(p, over);
  p.review.body = over.body;
  p.review.id = over.reviewId ?? p.review.id;
  p.review.user.login = p.sender.login;
  p.review.user.type = p.sender.type;
  return p;
}
