import type { Job } from "../jobs/types.js";
import { costCeiling } from "../cost/ceiling.js";
import { localCost } from "../cost/local-cost.js";

/** The ceiling shown while a job waits or runs, and the actual cost once it is over. */
export function costTexts(job: Job): { ceilingText: string; costText?: string } {
  const maxMinutes = job.config?.maxMinutes ?? 0;
  const ceilingText = costCeiling({ backend: job.backend, maxMinutes }).text;
  if (job.finishedAt === null || job.computeSeconds === null) return { ceilingText };
  // Only the local backend exists so far; GCE jobs will price their VM lifetime with estimate().
  return { ceilingText, costText: localCost(job.computeSeconds).text };
}
