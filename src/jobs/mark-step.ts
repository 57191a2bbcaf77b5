import type { StepRecord } from "./types.js";

/** Marks one step in the job's step list; steps are what the comment and the check show. */
export function markStep(steps: StepRecord[], name: string, status: StepRecord["status"], at: number, detail?: string): StepRecord[] {
  return steps.map((s) => {
    if (s.name !== name) return s;
    const next: StepRecord = { ...s, status };
    if (status === "running" && s.startedAt === undefined) next.startedAt = at;
    if (status === "done" || status === "failed") {
      next.startedAt = s.startedAt ?? at;
      next.finishedAt = at;
    }
    if (detail !== undefined) next.detail = detail;
    return next;
  });
}
