import type { Job } from "../jobs/types.js";
import type { RepoPermission } from "./github-user-api.js";
import type { Session, WebContext } from "./web-context.js";

/**
 * The job, if it exists and the signed-in person can read its repository. Both "no such job" and
 * "not yours to see" come back undefined, so the page answers 404 alike and reveals nothing.
 */
export async function findViewableJob(ctx: WebContext, session: Session, jobId: string): Promise<{ job: Job; permission: RepoPermission } | undefined> {
  if (!/^[a-z][a-z0-9]{1,40}$/.test(jobId)) return undefined;
  const job = await ctx.deps.store.get(jobId);
  if (!job) return undefined;
  const permission = await ctx.permission(session, job.repoId);
  return permission === "none" ? undefined : { job, permission };
}
