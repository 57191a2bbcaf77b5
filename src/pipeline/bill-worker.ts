import type { Job } from "../jobs/types.js";
import type { Worker } from "../backends/types.js";
import { priceJob, pricingOfWorker } from "../cost/price-job.js";
import type { PipelineDeps } from "./deps.js";

/**
 * Bills one worker of a job that holds a reservation, create to `endedAt`, at the price the worker
 * really ran at. Whoever destroys a worker bills it: the runner's teardown, the recovery of a job
 * whose controller died (its worker lived on until then), the delivery of a job ended outside its
 * run. Returns this worker's bill, or null when the job reserved nothing (nothing to bill against).
 */
export async function billWorker(
  deps: Pick<PipelineDeps, "ledger" | "config" | "priceTable" | "log">,
  job: Pick<Job, "id" | "backend" | "options">,
  worker: Pick<Worker, "id" | "createdAt" | "meta">,
  endedAt: number,
): Promise<{ billedSeconds: number; totalUsd: number } | null> {
  if (!(await deps.ledger.get(job.id))) return null;
  let pricing;
  try {
    pricing = priceJob({ backend: job.backend, machine: job.options.machine }, deps.config.gce, deps.priceTable, deps.config.cloudrun);
  } catch (err) {
    // This controller cannot price that backend (its configuration changed since): say so; a
    // made-up price would be worse than the reservation standing.
    deps.log.error({ err, jobId: job.id, workerId: worker.id }, "cannot price this worker's backend here; it is not billed");
    return null;
  }
  return deps.ledger.billWorker(job.id, worker, endedAt, pricingOfWorker(worker, pricing, deps.priceTable));
}
