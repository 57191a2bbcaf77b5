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

/** The step list with a pending `name` before `before` (at the end without it); as it is when `name` is there already. */
export function withStep(steps: StepRecord[], name: string, before: string): StepRecord[] {
  if (steps.some((s) => s.name === name)) return steps;
  const at = steps.findIndex((s) => s.name === before);
  const step: StepRecord = { name, status: "pending" };
  return at < 0 ? [...steps, step] : [...steps.slice(0, at), step, ...steps.slice(at)];
}
