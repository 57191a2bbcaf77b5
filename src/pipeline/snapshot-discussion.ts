import type { Job, JobContext } from "../jobs/types.js";
import type { GitHub } from "../github/types.js";
import { checkSenderPermission, type Permission } from "../github/check-sender-permission.js";
import { STATUS_MARKER_PREFIX } from "../status/status-marker.js";

/** At most this many distinct authors are checked; comments by the rest are left out and counted. */
const MAX_AUTHORS = 10;

/**
 * The discussion as it stood when the trigger arrived: comments older than the trigger, kept only
 * when their author has write access (checked with the permission API, failing closed), so a
 * drive-by comment cannot steer the agent. Bots and this app's own status comments are left out.
 */
export async function snapshotDiscussion(octokit: GitHub, job: Job, required: Permission): Promise<JobContext> {
  const { data } = await octokit.rest.issues.listComments({ owner: job.owner, repo: job.repo, issue_number: job.number, per_page: 100 });
  const before = data.filter((c) => {
    if (job.triggerCommentId !== null && c.id >= job.triggerCommentId) return false;
    if (c.user?.type === "Bot" || c.body?.includes(STATUS_MARKER_PREFIX)) return false;
    return Date.parse(c.created_at) <= job.createdAt;
  });
  const allowed = new Map<string, boolean>([[job.requester, true]]);
  const context: JobContext = { comments: [], droppedComments: 0 };
  for (const c of before) {
    const author = c.user?.login ?? "";
    if (!allowed.has(author)) {
      if (allowed.size >= MAX_AUTHORS + 1) allowed.set(author, false);
      else allowed.set(author, (await checkSenderPermission(octokit, { owner: job.owner, repo: job.repo, username: author }, required)).allowed);
    }
    if (allowed.get(author)) context.comments.push({ author, body: c.body ?? "" });
    else context.droppedComments++;
  }
  return context;
}
