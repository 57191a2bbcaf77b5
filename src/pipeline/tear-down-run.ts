import { billWorker } from "./bill-worker.js";
import type { JobRun } from "./job-run.js";
import { revokeKeptWorkerToken } from "./worker-token-at-rest.js";

/**
 * Destroys the worker and revokes the token as soon as the worker is done (reporting needs
 * neither), then bills the worker's lifetime, create to delete. Runs once; runJob's `finally` calls
 * it too, so every path out tears down.
 */
export async function tearDownRun(run: JobRun): Promise<void> {
  const { deps, log, backend, pricing } = run;
  if (run.tornDown) return;
  run.tornDown = true;
  // A process whose lease was taken over leaves the worker and the token to the new holder:
  // create() adopts a worker by the job's id, so destroying "ours" could end the new run.
  if (!(await deps.store.holdsLease().catch(() => true))) {
    log.error("the lease on this job was taken over; its worker and token are left to the new holder");
    return;
  }
  const { worker, token } = run;
  if (worker && backend)
    await backend.destroy(worker).catch((err) => log.error({ err, workerId: worker.id }, "could not destroy the worker; the reaper will retry"));
  // Also when the mint itself failed: its answer may have been lost after GitHub minted it.
  if (token || run.minting) {
    await revokeKeptWorkerToken(deps, run.job.id, log, token ?? undefined).catch((err) =>
      log.error({ err }, "could not revoke the worker token; it stays sealed in the store and expires within the hour"),
    );
  }
  if (run.reserved && pricing) {
    // This worker's bill, then the job's: the sum of every worker it had (an earlier start's
    // worker was billed by the recovery that destroyed it).
    const bill = worker ? await billWorker(deps, run.job, worker, deps.now()) : null;
    const { totalUsd, billedSeconds } = await deps.ledger.finalize(run.job.id, run.meter.usage());
    run.job = await deps.store.update(run.job.id, { costUsd: totalUsd });
    deps.metrics.costUsd.inc({ repo: `${run.job.owner}/${run.job.repo}`, backend: run.job.backend }, bill?.totalUsd ?? 0);
    deps.metrics.workerSeconds.inc({ backend: run.job.backend }, bill?.billedSeconds ?? 0);
    log.info({ workerSeconds: bill?.billedSeconds ?? 0, billedSeconds, totalUsd }, "job billed");
  }
}
