import type { ContextComment, Job } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { checkSenderPermission, type Permission } from "../github/check-sender-permission.js";

/** At most this many distinct authors are checked; comments by the rest are left out and counted. */
const MAX_AUTHORS = 10;
/** Review comments kept for the prompt (the prompt's own caps cut their text further). */
const MAX_REVIEW_COMMENTS = 30;

/**
 * The comments of the review that asked for the run: every inline comment submitted with it and,
 * for a reply, the rest of its thread, each with its file, line and diff hunk. As for the
 * discussion (snapshot-discussion.ts), only comments whose author has write access are kept
 * (permission API, failing closed), and only those written before the trigger arrived. One call:
 * the pull request's review comments, newest hundred.
 */
export async function snapshotReview(octokit: GitHub, job: Job, required: Permission): Promise<{ comments: ContextComment[]; dropped: number }> {
  const review = job.options.review;
  if (!review) return { comments: [], dropped: 0 };
  const { data } = await octokit.rest.pulls.listReviewComments({
    owner: job.owner,
    repo: job.repo,
    pull_number: job.number,
    per_page: 100,
    sort: "created",
    direction: "desc",
  });
  const wanted = data
    .filter((c) => {
      const inReview = c.pull_request_review_id === review.reviewId;
      const inThread = review.threadId !== undefined && (c.id === review.threadId || c.in_reply_to_id === review.threadId);
      if (!inReview && !inThread) return false;
      if (c.user?.type === "Bot") return false;
      return Date.parse(c.created_at) <= job.createdAt;
    })
    .sort((a, b) => a.id - b.id)
    .slice(-MAX_REVIEW_COMMENTS);
  const allowed = new Map<string, boolean>([[job.requester, true]]);
  const comments: ContextComment[] = [];
  let dropped = 0;
  for (const c of wanted) {
    const author = c.user?.login ?? "";
    if (!allowed.has(author)) {
      if (allowed.size >= MAX_AUTHORS + 1) allowed.set(author, false);
      else allowed.set(author, (await checkSenderPermission(octokit, { owner: job.owner, repo: job.repo, username: author }, required)).allowed);
    }
    if (!allowed.get(author)) {
      dropped++;
      continue;
    }
    comments.push({
      author,
      body: c.body ?? "",
      id: c.id,
      threadId: c.in_reply_to_id ?? c.id,
      path: c.path,
      line: c.line ?? c.original_line ?? null,
      diffHunk: c.diff_hunk,
    });
  }
  return { comments, dropped };
}
