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
  const priced = pricingOfWorker(worker, pricing, deps.priceTable);
  const bill = await deps.ledger.billWorker(job.id, worker, endedAt, priced);
  const hedge = hedgeOf(worker);
  if (!hedge) return bill;
  // A hedged pool start's other VM (src/backends/gce/pool-take.ts) ran for this job too, at the same price.
  const other = await deps.ledger.billWorker(job.id, hedge.worker, hedge.endedAt, priced);
  return { billedSeconds: bill.billedSeconds + other.billedSeconds, totalUsd: bill.totalUsd + other.totalUsd };
}

/** The second VM a hedged gce pool start resumed, as its own worker and end, from the worker's meta. */
function hedgeOf(worker: Pick<Worker, "meta">): { worker: { id: string; createdAt: number }; endedAt: number } | undefined {
  const { hedgeVm, hedgeResumedAt, hedgeBilledSeconds } = worker.meta;
  const from = Number(hedgeResumedAt);
  const seconds = Number(hedgeBilledSeconds);
  if (!hedgeVm || !Number.isFinite(from) || !Number.isFinite(seconds) || seconds <= 0) return undefined;
  return { worker: { id: hedgeVm, createdAt: from }, endedAt: from + seconds * 1000 };
}
