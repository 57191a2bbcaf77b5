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
 * run: the worker script over SSH (src/remote), the token on stdin.
 * destroy: stop an in-process run, delete the job's secret, delete the VM; "not found" is success.
 * list: every VM carrying this deployment's `agent-work-env` label.
 */
import type { Backend, BackendMaintenance, BackendModule, JobSpec, RunResult, RunSpec, Worker } from "../types.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import { IncompleteListError } from "../incomplete-list-error.js";
import { remoteJobDir } from "../../remote/remote-work-dir.js";
import { runWorkerOverSsh } from "../../remote/run-worker-over-ssh.js";
import { SshPool } from "../../remote/ssh-pool.js";
import { realClock, retryTransient, type Backoff, type Clock } from "./backoff.js";
import { buildInstanceBody, type InstanceSettings, type ProvisioningModel } from "./build-instance.js";
import { classifyGceError, triesElsewhere, type ClassifiedGceError } from "./classify-gce-error.js";
import { createComputeApi, type ComputeApi, type GceInstance, type GcpClientOptions } from "./compute-api.js";
import { LABEL, instanceName, jobIdOfInstance, labelValue, lastSegment, regionOfZone, requestIdFor } from "./gce-names.js";
import type { JobSecrets } from "./job-secrets.js";
import { waitForOperation } from "./wait-for-operation.js";
import { createWarmPool } from "./warm-pool.js";
import { fingerprintOfKeyBlob, probeSshHostKey, waitForSsh, type SshProbe } from "./wait-for-ssh.js";

export interface GceLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Where and how the controller logs in to a VM. */
export interface VmSshTarget {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  hostKeySha256: string;
}

/** Runs the worker script on a VM over SSH; the default is {@link runOnVmOverSsh}. */
export type RunOnVm = (
  target: VmSshTarget,
  options: { workDir: string; input: RunSpec; onEvent: (e: ProgressEvent) => void; signal: AbortSignal; maxSeconds: number; redactToken?: string },
) => Promise<RunResult>;

export interface GceBackendOptions extends InstanceSettings {
  project: string;
  /** Tried in this order. */
  zones: string[];
  spot: boolean;
  onDemandFallback: boolean;
  maxVms: number;
  ssh: {
    username: string;
    privateKey: string;
    /** 22 on real VMs; tests point it at a local sshd. */
    port?: number;
    /**
     * `guest-attributes` (default): the host key must match one the VM's guest agent published,
     * read through the Compute API, so a machine in the middle cannot pose as the VM.
     * `first-use`: pin whatever key the VM shows first (for images without the guest agent).
     */
    hostKeys?: "guest-attributes" | "first-use";
  };
  /** From insert until SSH answers; past it the VM is deleted and create() fails. */
  bootTimeoutSeconds: number;
  /** Added to the job's limit and the boot time for the VM's own dead-man switch (default 120). */
  graceSeconds?: number;
  /** The job's folder on the VM is `<remoteWorkRoot>/<jobId>` (default `jobs`, under the login user's home). */
  remoteWorkRoot?: string;
  /** Node on the VM (default `node` on the login PATH; the Ansible role installs it). */
  nodePath?: string;
  /** Between SIGTERM and SIGKILL when a run is stopped (default 5000). */
  killGraceMs?: number;
  /** The SSH connections to VMs; one is made (and closed by close()) when not given. */
  sshPool?: SshPool;
  /** How the worker script runs on a VM; tests may replace it. Default: over SSH via `sshPool`. */
  runOnVm?: RunOnVm;
  /** Per-job Secret Manager secrets: written by run() and deleted by destroy() with `tokenDelivery: "secret-manager"`. */
  jobSecrets?: JobSecrets;
  /**
   * How the job's token reaches the VM. `ssh-stdin` (default): inside the worker's input on the SSH
   * channel. `secret-manager`: in a per-job secret (TTL, only the workers' service account may read
   * it) that the worker reads with the VM's identity; the input then names the secret instead.
   */
  tokenDelivery?: "ssh-stdin" | "secret-manager";
  /** Where the worker reaches the metadata server and Secret Manager (tests: a fake); the real ones when unset. */
  tokenEndpoints?: { metadataUrl?: string; secretManagerUrl?: string };
  /** A job secret older than this with no VM of its job is deleted by maintain() (default 900). */
  secretSweepAfterSeconds?: number;
  /** Built from `clientOptions` when not given. */
  compute?: ComputeApi;
  clientOptions?: GcpClientOptions;
  probe?: SshProbe;
  clock?: Clock;
  log?: GceLog;
  /**
   * The warm pool: per machine type and zone, how many VMs to keep booted once and parked
   * (suspended, or stopped with `poolPark: "stop"`). Empty or absent: no pool (the default).
   */
  pool?: { machineType: string; zone: string; size: number }[];
  /** A parked VM older than this is deleted and replaced (default 86 400: a day). */
  poolMaxAgeSeconds?: number;
  /** `suspend` (default: memory kept, resumes in seconds) or `stop` (machine types that cannot suspend: boots again). */
  poolPark?: "suspend" | "stop";
  /** The longest job a pool VM may be given; its dead-man switch covers the pool age plus this (default 3600). */
  poolJobMaxSeconds?: number;
  /** Seconds between looks at a running job's VM, to notice a preemption (default 15). */
  watchSeconds?: number;
  /** How long a zone operation may take (default 300). */
  operationTimeoutSeconds?: number;
}

/**
 * Thrown by create() when no VM could be made. `retryable` is true when every zone was merely out
 * of stock (capacity comes back) or the API kept failing transiently; false for quota, bad
 * configuration or missing permissions, which need a person. A class because callers branch on it.
 */
export interface GceBackend extends Backend {
  /** Closes the SSH connections this backend opened. */
  close(): Promise<void>;
}

/** The production RunOnVm: a pooled SSH connection with the VM's pinned host key, then the worker script. */
export function runOnVmOverSsh(pool: SshPool, defaults: { nodePath?: string; killGraceMs?: number } = {}): RunOnVm {
  return async (target, options) => {
    const ssh = await pool.connection(target);
    return runWorkerOverSsh(ssh, {
      ...options,
      ...(defaults.nodePath ? { nodePath: defaults.nodePath } : {}),
      ...(defaults.killGraceMs !== undefined ? { killGraceMs: defaults.killGraceMs } : {}),
    });
  };
}

export class GceCreateError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly attempts: { zone: string; provisioningModel: ProvisioningModel; kind: ClassifiedGceError["kind"]; code: string; message: string }[] = [],
  ) {
    super(message);
    this.name = "GceCreateError";
  }
}

const NAME = "gce";
/** Instance states in which a VM can no longer run the job: a preempted spot VM, one being deleted. */
const DEAD_STATES = new Set(["STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED"]);
const READY_POLL = { initialMs: 1000, maxMs: 5000, multiplier: 1.5 };
const RUN_STOP_WAIT_MS = 10_000;

function metaOf(worker: Worker, key: string): string | undefined {
  const value = worker.meta[key];
  return value === undefined || value === "" ? undefined : value;
}

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
  const runs = new Map<string, { stop: AbortController; done: Promise<unknown>; destroying: boolean }>();

  const retry = <T>(call: () => Promise<T>, signal?: AbortSignal) =>
    retryTransient(call, {
      clock,
      ...(signal ? { signal } : {}),
      onRetry: (err, delayMs) => log?.warn({ err: classifyGceError(err), delayMs }, "GCE call failed transiently; retrying"),
    });

  function placements(replacing?: Worker): { zone: string; provisioningModel: ProvisioningModel }[] {
    if (replacing) return replacementPlacements(replacing);
    const models: ProvisioningModel[] = options.spot ? (options.onDemandFallback ? ["SPOT", "STANDARD"] : ["SPOT"]) : ["STANDARD"];
    // Spot in every zone before on-demand anywhere: the cheap machine is worth a second zone.
    return models.flatMap((provisioningModel) => options.zones.map((zone) => ({ zone, provisioningModel })));
  }

  /**
   * Where a job goes again after its VM was lost: a lost spot VM is replaced on-demand (which is
   * not preempted), starting in its own zone, when on-demand is allowed; otherwise (or when the lost
   * VM was on-demand already) the same model in the next zones first, its own zone last.
   */
  function replacementPlacements(lost: Worker): { zone: string; provisioningModel: ProvisioningModel }[] {
    const lostZone = lost.meta.zone ?? "";
    const wasSpot = lost.meta.provisioningModel === "SPOT";
    const at = options.zones.indexOf(lostZone);
    const rotated = at < 0 ? options.zones : [...options.zones.slice(at + 1), ...options.zones.slice(0, at + 1)];
    if (wasSpot && options.onDemandFallback) {
      const order = at < 0 ? options.zones : [lostZone, ...rotated.filter((z) => z !== lostZone)];
      return order.map((zone) => ({ zone, provisioningModel: "STANDARD" as const }));
    }
    return rotated.map((zone) => ({ zone, provisioningModel: wasSpot ? ("SPOT" as const) : ("STANDARD" as const) }));
  }

  function maxRunSeconds(job: JobSpec): number {
    return Math.ceil(job.maxSeconds + options.bootTimeoutSeconds + graceSeconds);
  }

  function sshHost(instance: GceInstance): string | undefined {
    const nic = instance.networkInterfaces?.[0];
    if (options.externalIp) return nic?.accessConfigs?.[0]?.natIP ?? undefined;
    return nic?.networkIP ?? undefined;
  }

  function workerFrom(zone: string, instance: GceInstance, extra: Record<string, string> = {}): Worker {
    const name = instance.name ?? "";
    const labels = instance.labels ?? {};
    const machineType = lastSegment(instance.machineType) || options.machineType;
    const meta: Record<string, string> = {
      project: options.project,
      zone,
      region: regionOfZone(zone),
      instanceName: name,
      machineType,
      provisioningModel: String(instance.scheduling?.provisioningModel ?? "STANDARD"),
      diskGb: String(options.diskGb),
      diskType: options.diskType,
      status: String(instance.status ?? ""),
      ...(labels[LABEL.expiresAt] ? { expiresAt: labels[LABEL.expiresAt] } : {}),
      ...(labels[LABEL.repo] ? { repoLabel: labels[LABEL.repo] } : {}),
      ...extra,
    };
    const host = sshHost(instance);
    if (host) meta.host = host;
    return {
      id: name,
      backend: NAME,
      jobId: labels[LABEL.job] ?? jobIdOfInstance(name) ?? name,
      createdAt: Date.parse(instance.creationTimestamp ?? "") || 0,
      meta,
    };
  }

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

  /** One placement: insert (retrying transient failures with the same requestId) and wait. */
  async function insertIn(job: JobSpec, name: string, zone: string, provisioningModel: ProvisioningModel, signal: AbortSignal): Promise<GceInstance> {
    const body = buildInstanceBody(options, {
      name,
      jobId: job.jobId,
      repoFullName: job.repoFullName,
      zone,
      provisioningModel,
      maxRunSeconds: maxRunSeconds(job),
      now: clock.now(),
      ...(job.machineType ? { machineType: job.machineType } : {}),
    });
    // A generation beyond 0 is needed only when GCE replays an old insert (below).
    for (let generation = 0; generation < 3; generation++) {
      const requestId = requestIdFor(job.jobId, zone, provisioningModel, String(generation));
      let operation: string;
      try {
        operation = await retry(() => compute.insertInstance(zone, body, requestId), signal);
      } catch (err) {
        if (classifyGceError(err).kind !== "already_exists") throw err;
        const existing = await retry(() => compute.getInstance(zone, name), signal);
        if (existing) return existing;
        throw err;
      }
      log?.info({ jobId: job.jobId, zone, provisioningModel, operation }, "GCE insert accepted; waiting for the zone operation");
      await waitForOperation(compute, zone, operation, { clock, deadline: clock.now() + operationTimeoutMs, signal });
      const instance = await retry(() => compute.getInstance(zone, name), signal);
      if (instance) return instance;
      // The operation succeeded but there is no VM: GCE answered with the operation of an earlier
      // insert under this requestId whose VM was deleted since (a recovered job starting again).
      log?.warn({ jobId: job.jobId, zone, requestId }, "insert replayed an earlier request whose VM is gone; inserting again with a new requestId");
    }
    throw new GceCreateError(`GCE keeps answering the insert for ${name} in ${zone} without making a VM`, true);
  }

  async function insertWithFallback(job: JobSpec, name: string, signal: AbortSignal): Promise<{ zone: string; instance: GceInstance }> {
    const attempts: GceCreateError["attempts"] = [];
    for (const { zone, provisioningModel } of placements(job.replacing)) {
      signal.throwIfAborted();
      try {
        return { zone, instance: await insertIn(job, name, zone, provisioningModel, signal) };
      } catch (err) {
        if (err instanceof GceCreateError || signal.aborted) throw err;
        const c = classifyGceError(err);
        if (!triesElsewhere(c.kind)) {
          throw new GceCreateError(`could not create VM ${name} in ${zone} (${provisioningModel}): ${c.code}: ${c.message}`, c.kind === "transient", [
            ...attempts,
            { zone, provisioningModel, kind: c.kind, code: c.code, message: c.message },
          ]);
        }
        attempts.push({ zone, provisioningModel, kind: c.kind, code: c.code, message: c.message });
        log?.warn({ jobId: job.jobId, zone, provisioningModel, code: c.code }, "no VM here; trying the next zone or provisioning model");
      }
    }
    const tried = attempts.map((a) => `${a.zone} ${a.provisioningModel === "SPOT" ? "spot" : "on-demand"}: ${a.code}`).join("; ");
    const allStockOuts = attempts.every((a) => a.kind === "stock_out");
    throw new GceCreateError(
      `no zone could start a ${options.machineType} VM for job ${job.jobId} (${tried}). ` +
        (allStockOuts
          ? "Every zone is out of capacity for now; the job can be retried later, or add zones to GCE_ZONES."
          : "A quota is exhausted: raise it in the Cloud console (IAM & Admin → Quotas), lower GCE_MAX_VMS, or pick a smaller GCE_MACHINE_TYPE."),
      allStockOuts,
      attempts,
    );
  }

  /**
   * Waits until the VM is RUNNING, answers SSH, and shows a host key we can trust: one its guest
   * agent published, or, for a resumed pool VM, `recordedHostKey`, the key it showed (and that was
   * checked) when it was booted for the pool. A VM showing any other key is refused.
   */
  async function awaitReady(
    zone: string,
    instance: GceInstance,
    deadline: number,
    signal: AbortSignal,
    resumed: { recordedHostKey?: string; sshBackoff?: Backoff } = {},
  ): Promise<Worker> {
    const name = instance.name ?? "";
    let current = instance;
    for (let attempt = 0; String(current.status) !== "RUNNING"; attempt++) {
      if (DEAD_STATES.has(String(current.status))) throw new Error(`VM ${name} is ${current.status} before the job started (preempted or deleted)`);
      if (clock.now() >= deadline) throw new Error(`VM ${name} is still ${current.status} at the boot deadline`);
      await clock.sleep(Math.min(READY_POLL.maxMs, READY_POLL.initialMs * READY_POLL.multiplier ** attempt), signal);
      const fresh = await retry(() => compute.getInstance(zone, name), signal);
      if (!fresh) throw new Error(`VM ${name} disappeared while booting (preempted or deleted)`);
      current = fresh;
    }
    const host = sshHost(current);
    if (!host) throw new Error(`VM ${name} has no ${options.externalIp ? "external" : "internal"} address to reach SSH on`);
    const seen = await waitForSsh({ host, port: sshPort, probe, clock, deadline, signal, ...(resumed.sshBackoff ? { backoff: resumed.sshBackoff } : {}) });
    let hostKeySha256: string;
    if (resumed.recordedHostKey) {
      // Suspend and stop keep the disk and the instance, so the guest agent keeps the host key it
      // made at the first boot: a different one is another machine (or a rebuilt one), never trusted.
      if (seen !== resumed.recordedHostKey) {
        throw new Error(`VM ${name} showed SSH host key ${seen}, but ${resumed.recordedHostKey} when it was booted for the pool; refusing to use it`);
      }
      hostKeySha256 = seen;
    } else {
      hostKeySha256 = hostKeyPolicy === "first-use" ? seen : await publishedHostKey(zone, name, seen, deadline, signal);
    }
    return workerFrom(zone, current, { port: String(sshPort), hostKeySha256, username: options.ssh.username });
  }

  /** The guest agent's published host keys must include the one SSH showed; returns it. */
  async function publishedHostKey(zone: string, name: string, seen: string, deadline: number, signal: AbortSignal): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const keys = await retry(() => compute.hostKeys(zone, name), signal);
      if (keys) {
        const fingerprints = Object.values(keys).map((blob) => fingerprintOfKeyBlob(Buffer.from(blob, "base64")));
        if (fingerprints.includes(seen)) return seen;
        throw new Error(
          `VM ${name} showed SSH host key ${seen}, which is not among the keys its guest agent published (${fingerprints.join(", ")}); refusing to use it`,
        );
      }
      if (clock.now() >= deadline) {
        throw new Error(
          `VM ${name} published no SSH host keys in its guest attributes before the boot deadline; the image needs the Google guest agent with enable-guest-attributes (or set the backend's hostKeys to first-use)`,
        );
      }
      await clock.sleep(Math.min(READY_POLL.maxMs, READY_POLL.initialMs * READY_POLL.multiplier ** attempt), signal);
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
      if (taken) return taken.ready;
    }
    if (!placed) {
      try {
        placed = await insertWithFallback(job, name, signal);
      } catch (err) {
        // Stopped half-way: an insert may have gone through. Delete what it made, not the job's record of it.
        if (signal.aborted)
          await removeJobInstances(job.jobId).catch((e) => log?.error({ jobId: job.jobId, err: e }, "could not delete the VM of a cancelled create"));
        throw err;
      }
    }

    try {
      return await awaitReady(placed.zone, placed.instance, deadline, signal);
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
   * The worker's input as it travels: with `secret-manager` delivery the token goes into the job's
   * secret and the input only names it. Not when the agent shares the VM's network (sandbox off or
   * shareNet): it could then ask the metadata server for the VM's identity and read the secret
   * itself, so the token stays on stdin, where the agent cannot reach it.
   */
  async function deliverToken(jobId: string, spec: RunSpec, maxSeconds: number): Promise<RunSpec> {
    if (tokenDelivery !== "secret-manager" || !spec.token || spec.noSecrets) return spec;
    if (spec.sandbox.kind !== "bwrap" || spec.sandbox.shareNet) {
      log?.warn(
        { jobId },
        "the agent shares the VM's network, so the token goes over SSH stdin instead of Secret Manager (the agent could read the secret with the VM's identity)",
      );
      return spec;
    }
    // The secret outlives the run by the grace only: the TTL deletes it if teardown and sweeps all miss.
    const secret = await secrets!.put(jobId, spec.token, { ttlSeconds: Math.ceil(maxSeconds + graceSeconds) });
    return { ...spec, token: "", tokenFrom: { secretVersion: `${secret}/versions/latest`, ...(options.tokenEndpoints ?? {}) } };
  }

  async function run(worker: Worker, spec: RunSpec, onEvent: (e: ProgressEvent) => void, signal: AbortSignal): Promise<RunResult> {
    if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
    let ready = worker;
    if (!metaOf(worker, "host") || !metaOf(worker, "hostKeySha256") || !metaOf(worker, "zone")) {
      // A worker from list() (after a restart) lacks what only create() learns; look again.
      const [found] = (await findJobInstances(worker.jobId)).filter((f) => !DEAD_STATES.has(String(f.instance.status)));
      if (!found) return { outcome: "error", message: `the VM for job ${worker.jobId} is gone (preempted or deleted)`, computeSeconds: 0, aborted: false };
      ready = await awaitReady(found.zone, found.instance, clock.now() + options.bootTimeoutSeconds * 1000, signal);
    }
    const expiresAt = Number(metaOf(ready, "expiresAt") ?? NaN) * 1000;
    // The VM deletes itself at expires-at; stop the worker a little earlier so it can still report.
    const maxSeconds = Number.isFinite(expiresAt) ? Math.floor((expiresAt - clock.now()) / 1000) - graceSeconds : spec.agentTimeoutSeconds + graceSeconds;
    if (maxSeconds <= 0) return { outcome: "timed_out", message: `VM ${ready.id} is past its time limit`, computeSeconds: 0, aborted: false };

    const delivered = await deliverToken(worker.jobId, spec, maxSeconds);

    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const target: VmSshTarget = {
      host: ready.meta.host!,
      port: Number(ready.meta.port ?? sshPort),
      username: options.ssh.username,
      privateKey: options.ssh.privateKey,
      hostKeySha256: ready.meta.hostKeySha256!,
    };
    const done = runOnVm(target, {
      workDir: remoteJobDir(remoteWorkRoot, worker.jobId),
      input: delivered,
      onEvent,
      signal: stop.signal,
      maxSeconds,
      ...(delivered.token === spec.token ? {} : { redactToken: spec.token }),
    });
    const entry = { stop, done: done.catch(() => undefined), destroying: false };
    runs.set(worker.jobId, entry);
    const zone = ready.meta.zone!;
    const name = ready.meta.instanceName ?? ready.id;
    // The VM is watched through the Compute API while the worker runs: a preempted spot VM is
    // known from its status and GCE's preemption record, not guessed from a dead SSH session.
    const watching = new AbortController();
    let lostWhy: string | null = null;
    const watcher = watchVm(zone, name, watching.signal).then((why) => {
      if (why && !entry.destroying && !signal.aborted) {
        lostWhy = why;
        log?.warn({ jobId: worker.jobId, zone, vm: name }, why);
        stop.abort(new Error(why));
      }
    });
    try {
      const result = await done;
      watching.abort();
      await watcher;
      // The run ended on its own with an error (the SSH session died): was the VM lost?
      if (!lostWhy && result.outcome === "error" && !result.aborted && !entry.destroying && !signal.aborted) {
        lostWhy = await lossOf(zone, name).catch(() => null);
      }
      if (lostWhy) return { ...result, outcome: "error", aborted: false, message: lostWhy, lost: { reason: lostWhy } };
      return result;
    } finally {
      watching.abort();
      signal.removeEventListener("abort", onAbort);
      if (runs.get(worker.jobId) === entry) runs.delete(worker.jobId);
    }
  }

  /** Why the VM can no longer run its job (preempted, deleted, stopped), or null while it can. */
  async function lossOf(zone: string, name: string): Promise<string | null> {
    const instance = await retry(() => compute.getInstance(zone, name));
    if (instance && !DEAD_STATES.has(String(instance.status))) return null;
    const preempted = await retry(() => compute.wasPreempted(zone, name)).catch(() => false);
    if (preempted) return `the spot VM ${name} was preempted in ${zone}`;
    return instance ? `the VM ${name} is ${String(instance.status)} (stopped outside agent-work)` : `the VM ${name} in ${zone} was deleted outside agent-work`;
  }

  /** Polls the VM until `until` aborts; resolves with why it was lost, or null. */
  async function watchVm(zone: string, name: string, until: AbortSignal): Promise<string | null> {
    const everyMs = (options.watchSeconds ?? 15) * 1000;
    for (;;) {
      try {
        await clock.sleep(everyMs, until);
      } catch {
        return null;
      }
      if (until.aborted) return null;
      const why = await lossOf(zone, name).catch((err) => {
        log?.warn({ zone, vm: name, err: classifyGceError(err) }, "could not look at the VM while its job runs; looking again later");
        return null;
      });
      if (why) return why;
    }
  }

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
    const workers = instances.map(({ zone, instance }) => workerFrom(zone, instance));
    if (unreachable.length > 0) throw new IncompleteListError(workers, unreachable);
    return workers;
  }

  async function waitFor(zone: string, operation: string, signal?: AbortSignal): Promise<void> {
    await waitForOperation(compute, zone, operation, { clock, deadline: clock.now() + operationTimeoutMs, ...(signal ? { signal } : {}) });
  }

  const warmPool = createWarmPool({ options, compute, clock, log, envFilter, graceSeconds, operationTimeoutMs, retry, waitFor, deleteAndWait, awaitReady });

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
