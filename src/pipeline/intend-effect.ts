import type { PipelineDeps } from "./deps.js";

/** GitHub objects whose creation GitHub does not deduplicate for us. */
export type CreatedEffect = "check-run" | "status-comment" | "pr-check-run";

/**
 * Writes down that a job is about to create `effect`, before it asks GitHub, and says whether it
 * had been about to before. `true` means an earlier attempt may have created it without living to
 * record its id: look for it (by the job id it carries) before creating another.
 */
export async function intendEffect(deps: PipelineDeps, jobId: string, effect: CreatedEffect): Promise<boolean> {
  if (await deps.store.hasIntent(jobId, effect)) return true;
  await deps.store.appendEvent(jobId, "intent", { effect });
  return false;
}
