export const STATUS_MARKER_PREFIX = "<!-- agent-work:job=";

/** The hidden marker that finds a job's status comment again, whatever else the comment says. */
export function statusMarker(jobId: string): string {
  return `${STATUS_MARKER_PREFIX}${jobId} -->`;
}
