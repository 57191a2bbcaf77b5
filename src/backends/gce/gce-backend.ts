/**
 * The `gce` backend: one Compute Engine VM per job.
 *
 * create: adopt the job's VM if one exists (found by its labels), else take a parked one from the
 *   warm pool when one is configured (warm-pool.ts, pool-take.ts), else insert one — spot first in
 *   every configured zone, then on-demand if allowed — with a requestId derived from the job id,
 *   so a retried insert returns the first operation instead of a second VM. Then wait for the zone
 *   operation, for RUNNING, for SSH (backoff, deadline) and for the host key the guest agent
 *   publishes, which is pinned in the worker's meta. A VM that never becomes usable is deleted
 *   before create() throws: nothing is left that no worker record names.
 *   (insert-vm.ts: placements and the insert; vm-readiness.ts: RUNNING, SSH and the host key.)
 * run: the worker script over SSH (src/remote), the token on stdin or in the job's secret, while
 *   the VM is watched for a preemption (run-on-vm.ts, watch-vm.ts).
 * destroy: stop an in-process run, delete the job's secret, delete the VM; "not found" is success.
 * list: every VM carrying this deployment's `agent-work-env` label.
 */
import type { Backend, BackendMaintenance, BackendModule, JobSpec, Worker } from "../types.js";
import { IncompleteListError } from "../incomplete-list-error.js";
import { SshPool } from "../../remote/ssh-pool.js";
import { realClock, retryTransient } from "./backoff.js";
import { classifyGceError } from "./classify-gce-error.js";
import { createComputeApi, type GceInstance } from "./compute-api.js";
import type { GceBackendOptions } from "./gce-backend-options.js";
import { GceCreateError } from "./gce-create-error.js";
import { LABEL, instanceName, labelValue } from "./gce-names.js";
import { insertWithFallback, type InsertVmContext } from "./insert-vm.js";
import { runOnGceVm, runOnVmOverSsh, type RunningJob, type RunOnVmContext } from "./run-on-vm.js";
import { awaitReady, type VmReadinessContext } from "./vm-readiness.js";
import { DEAD_STATES, GCE_BACKEND_NAME, metaOf, workerFrom } from "./vm-worker.js";
import { waitForOperation } from "./wait-for-operation.js";
import { createWarmPool, type WarmPoolContext } from "./warm-pool.js";
import { probeSshHostKey } from "./wait-for-ssh.js";

// What other modules and the tests import from here, now made in the files beside it.
export type { GceBackendOptions, GceLog, RunOnVm, VmSshTarget } from "./gce-backend-options.js";
export { GceCreateError } from "./gce-create-error.js";
export { runOnVmOverSsh } from "./run-on-vm.js";

export interface GceBackend extends Backend {
  /** Closes the SSH connections this backend opened. */
  close(): Promise<void>;
}

const NAME = GCE_BACKEND_NAME;
const RUN_STOP_WAIT_MS = 10_000;

export function createGceBackend(options: GceBackendOptions): GceBackend {
  const clock = options.clock ?? realClock;
  const compute = options.compute ?? createComputeApi(options.project, options.clientOptions);
  const probe = options.probe ?? probeSshHostKey;
  const log = options.log;
  const sshPort = options.ssh.port ?? 22;
  const hostKeyPolicy = options.ssh.hostKeys ?? "guest-attributes";
  const graceSeconds = options.graceSeconds ?? 120;
  const operationTimeoutMs = (options.operationTimeoutSeconds ?? 300) * 1000;
  const remoteWorkRoot = options.remoteWorkRoot ?? "jobs";
  const ownPool = options.sshPool === undefined;
  const pool = options.sshPool ?? new SshPool(log ? { log: { warn: (o, m) => log.warn(o, m), error: (o, m) => log.error(o, m), debug: () => undefined } } : {});
  const runOnVm =
    options.runOnVm ??
    runOnVmOverSsh(pool, {
      ...(options.nodePath ? { nodePath: options.nodePath } : {}),
      ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
    });
  const envFilter = `labels.${LABEL.env} = "${labelValue(options.envLabel)}"`;
  const tokenDelivery = options.tokenDelivery ?? "ssh-stdin";
  const secrets = options.jobSecrets;
  if (tokenDelivery === "secret-manager" && !secrets) throw new Error("tokenDelivery secret-manager needs jobSecrets (a Secret Manager client)");
  /** Runs in this process, by job id, so destroy() can stop one before it deletes the VM. */
  const runs = new Map<string, RunningJob>();

  const retry = <T>(call: () => Promise<T>, signal?: AbortSignal) =>
    retryTransient(call, {
      clock,
      ...(signal ? { signal } : {}),
      onRetry: (err, delayMs) => log?.warn({ err: classifyGceError(err), delayMs }, "GCE call failed transiently; retrying"),
    });

  // What the files beside this one need from it, passed in (see each context's type).
  const readiness: VmReadinessContext = { options, compute, clock, probe, sshPort, hostKeyPolicy, retry };
  const awaitVmReady: WarmPoolContext["awaitReady"] = (zone, instance, deadline, signal, resumed) =>
    awaitReady(readiness, zone, instance, deadline, signal, resumed);
  const insertion: InsertVmContext = { options, compute, clock, log, graceSeconds, operationTimeoutMs, retry };

  async function findJobInstances(jobId: string): Promise<{ zone: string; instance: GceInstance }[]> {
    const { instances, unreachable } = await retry(() => compute.listInstances(`${envFilter} AND labels.${LABEL.job} = "${labelValue(jobId)}"`));
    // Creating while a zone cannot be seen could make a second VM for the job there.
    if (unreachable.length > 0) throw new GceCreateError(`cannot see every zone to look for job ${jobId}'s VM (${unreachable.join("; ")})`, true);
    return instances;
  }

  async function removeJobInstances(jobId: string): Promise<{ zone: string; name: string }[]> {
    const targets = (await findJobInstances(jobId)).map((f) => ({ zone: f.zone, name: f.instance.name ?? "" })).filter((t) => t.name !== "");
    await Promise.all(targets.map((t) => deleteAndWait(t.zone, t.name)));
    return targets;
  }

  async function deleteAndWait(zone: string, name: string): Promise<void> {
    const operation = await retry(() => compute.deleteInstance(zone, name));
    if (operation === null) return;
    try {
      await waitForOperation(compute, zone, operation, { clock, deadline: clock.now() + operationTimeoutMs });
    } catch (err) {
      if (classifyGceError(err).kind !== "not_found") throw err;
    }
  }

  async function create(job: JobSpec, signal: AbortSignal): Promise<Worker> {
    signal.throwIfAborted();
    const name = instanceName(job.jobId);
    const deadline = clock.now() + options.bootTimeoutSeconds * 1000;

    // The pool is listed alongside the look for the job's own VM rather than after it: both are
    // reads, and the take is guarded by the label fingerprint whatever the listing says.
    const poolListing = !job.replacing && warmPool.serves(job) ? warmPool.list() : undefined;
    // Read (or dropped) below; never an unhandled rejection when the job's own VM is found.
    poolListing?.catch(() => undefined);
    let placed: { zone: string; instance: GceInstance } | undefined;
    for (const found of await findJobInstances(job.jobId)) {
      if (!DEAD_STATES.has(String(found.instance.status)) && !placed) {
        placed = found;
        log?.info({ jobId: job.jobId, zone: found.zone, status: found.instance.status }, "adopting the job's existing VM");
      } else {
        // A preempted spot VM or a second VM of the same job (another zone): neither can run it.
        await deleteAndWait(found.zone, found.instance.name ?? name);
      }
    }
    if (!placed && poolListing) {
      const taken = await warmPool.take(job, poolListing, deadline, signal);
      if (taken) return loggingIn(taken.ready);
    }
    if (!placed) {
      try {
        placed = await insertWithFallback(insertion, job, name, signal);
      } catch (err) {
        // Stopped half-way: an insert may have gone through. Delete what it made, not the job's record of it.
        if (signal.aborted)
          await removeJobInstances(job.jobId).catch((e) => log?.error({ jobId: job.jobId, err: e }, "could not delete the VM of a cancelled create"));
        throw err;
      }
    }

    try {
      return loggingIn(await awaitVmReady(placed.zone, placed.instance, deadline, signal));
    } catch (err) {
      log?.warn({ jobId: job.jobId, zone: placed.zone, err: err instanceof Error ? err.message : String(err) }, "VM not usable; deleting it");
      await deleteAndWait(placed.zone, placed.instance.name ?? name).catch((e) =>
        log?.error({ jobId: job.jobId, err: e }, "could not delete the unusable VM; the reaper or its maxRunDuration will"),
      );
      if (err instanceof GceCreateError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      throw new GceCreateError(`VM ${name} did not become usable: ${message}`, !signal.aborted && !/refusing/.test(message));
    }
  }

  /**
   * Starts the SSH login run() will use as soon as the VM is the job's, rather than when run() asks
   * for it: between create() and run() the controller records the worker and mints the job's token
   * (GitHub round trips), and the handshake goes on meanwhile. The login pins the key create() just
   * checked, as run()'s does (run() then shares it from the pool); if it fails, run() connects again
   * and reports that. destroy() drops it with the VM.
   */
  function loggingIn(worker: Worker): Worker {
    const host = metaOf(worker, "host");
    const hostKeySha256 = metaOf(worker, "hostKeySha256");
    if (options.runOnVm || !host || !hostKeySha256) return worker;
    const target = { host, port: Number(worker.meta.port ?? sshPort), username: options.ssh.username, privateKey: options.ssh.privateKey, hostKeySha256 };
    // Nobody waits for it here: a failure is run()'s to meet and report, on its own attempt.
    pool.connection(target).catch(() => undefined);
    return worker;
  }

  const runContext: RunOnVmContext = {
    options,
    compute,
    clock,
    log,
    retry,
    sshPort,
    graceSeconds,
    remoteWorkRoot,
    tokenDelivery,
    secrets,
    runOnVm,
    runs,
    findJobInstances,
    awaitReady: awaitVmReady,
  };
  const run: Backend["run"] = (worker, spec, onEvent, signal) => runOnGceVm(runContext, worker, spec, onEvent, signal);

  async function destroy(worker: Worker): Promise<void> {
    // Stop a run in this process first, so its result says "stopped" rather than "connection
    // lost"; deleting the VM ends everything on it anyway, so the wait is short and bounded.
    const running = runs.get(worker.jobId);
    if (running) {
      running.destroying = true;
      running.stop.abort(new Error("the worker is being destroyed"));
      const waited = new AbortController();
      await Promise.race([running.done, clock.sleep(RUN_STOP_WAIT_MS, waited.signal).catch(() => undefined)]);
      waited.abort();
    }
    const zone = metaOf(worker, "zone");
    const name = metaOf(worker, "instanceName") ?? (worker.id.startsWith("agent-work-") ? worker.id : undefined);
    let targets: { zone: string; name: string }[] = zone && name ? [{ zone, name }] : [];
    // The VM and the job's secret go independently: a failure with one must not keep the other.
    const [vm, secret] = await Promise.allSettled([
      zone && name ? deleteAndWait(zone, name) : removeJobInstances(worker.jobId).then((found) => void (targets = found)),
      options.jobSecrets?.remove(worker.jobId),
    ]);
    // Internal addresses are reused by later VMs: never keep a connection to a deleted one.
    const host = metaOf(worker, "host");
    if (host) pool.discard({ host, port: Number(worker.meta.port ?? sshPort), username: options.ssh.username, privateKey: options.ssh.privateKey });
    if (vm.status === "rejected") throw vm.reason;
    if (secret.status === "rejected") throw secret.reason;
    if (targets.length > 0) log?.info({ jobId: worker.jobId, vms: targets }, "VM deleted");
  }

  async function list(): Promise<Worker[]> {
    const { instances, unreachable } = await retry(() => compute.listInstances(`${envFilter} AND labels.${LABEL.job}:*`));
    const workers = instances.map(({ zone, instance }) => workerFrom(options, zone, instance));
    if (unreachable.length > 0) throw new IncompleteListError(workers, unreachable);
    return workers;
  }

  async function waitFor(zone: string, operation: string, signal?: AbortSignal): Promise<void> {
    await waitForOperation(compute, zone, operation, { clock, deadline: clock.now() + operationTimeoutMs, ...(signal ? { signal } : {}) });
  }

  const warmPool = createWarmPool({
    options,
    compute,
    clock,
    log,
    envFilter,
    graceSeconds,
    operationTimeoutMs,
    retry,
    waitFor,
    deleteAndWait,
    awaitReady: awaitVmReady,
  });

  /**
   * The reaper's housekeeping for this backend, once a pass: job secrets whose job has no VM any
   * more (a controller that died between put and destroy) are deleted once they are older than
   * the sweep age, so a secret just written for a VM still booting is never taken.
   */
  async function maintain(): Promise<BackendMaintenance> {
    // A pool refill already under way (after a take) is this pass's pool work.
    const actions: BackendMaintenance["actions"] = [...(await warmPool.maintain()).actions];
    if (secrets) {
      const [vms, held] = await Promise.all([list(), secrets.list()]);
      const withVm = new Set(vms.map((v) => v.jobId));
      const cutoff = clock.now() - (options.secretSweepAfterSeconds ?? 900) * 1000;
      for (const secret of held) {
        if (withVm.has(secret.jobId) || secret.createdAt > cutoff) continue;
        try {
          await secrets.remove(secret.jobId);
          actions.push({ kind: "delete-job-secret", id: secret.name, reason: `job ${secret.jobId} has no VM` });
        } catch (err) {
          actions.push({
            kind: "delete-job-secret",
            id: secret.name,
            reason: `job ${secret.jobId} has no VM`,
            error: err instanceof Error ? err.message : String(err),
          });
        }
      }
    }
    return { actions };
  }

  async function capacity(): Promise<{ max: number; active: number }> {
    return { max: options.maxVms, active: (await list()).length };
  }

  async function close(): Promise<void> {
    await warmPool.close();
    if (ownPool) await pool.close();
  }

  return { name: NAME, capacity, create, run, destroy, list, maintain, close };
}

export const gce = {
  name: NAME,
  create: (opts: GceBackendOptions): GceBackend => createGceBackend(opts),
} satisfies BackendModule<GceBackendOptions>;
