/**
 * run() of the gce backend: the worker script on the job's VM over SSH, with the token on stdin or
 * in the job's Secret Manager secret, while the VM is watched through the Compute API so a
 * preempted or deleted VM ends the run as `lost` rather than as a broken connection.
 */
import type { RunResult, RunSpec, Worker } from "../types.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import { remoteJobDir } from "../../remote/remote-work-dir.js";
import { runWorkerOverSsh } from "../../remote/run-worker-over-ssh.js";
import type { SshPool } from "../../remote/ssh-pool.js";
import type { GceInstance } from "./compute-api.js";
import type { GceBackendOptions, RunOnVm, VmSshTarget } from "./gce-backend-options.js";
import type { JobSecrets } from "./job-secrets.js";
import { DEAD_STATES, metaOf } from "./vm-worker.js";
import { lossOf, watchVm, type VmWatchContext } from "./watch-vm.js";

/** A run in this process, so destroy() can stop it before it deletes the VM. */
export interface RunningJob {
  stop: AbortController;
  done: Promise<unknown>;
  /** Set by destroy(): the run's end is then not a lost VM. */
  destroying: boolean;
}

/** What run() needs from the backend, passed in rather than reached for. */
export interface RunOnVmContext extends VmWatchContext {
  options: GceBackendOptions;
  sshPort: number;
  graceSeconds: number;
  remoteWorkRoot: string;
  tokenDelivery: "ssh-stdin" | "secret-manager";
  secrets: JobSecrets | undefined;
  runOnVm: RunOnVm;
  /** Runs in this process, by job id; shared with destroy(). */
  runs: Map<string, RunningJob>;
  /** The job's VMs in every zone, by label. */
  findJobInstances(jobId: string): Promise<{ zone: string; instance: GceInstance }[]>;
  /** RUNNING, SSH answering, and the host key checked: the backend's awaitReady. */
  awaitReady(zone: string, instance: GceInstance, deadline: number, signal: AbortSignal): Promise<Worker>;
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

export async function runOnGceVm(
  ctx: RunOnVmContext,
  worker: Worker,
  spec: RunSpec,
  onEvent: (e: ProgressEvent) => void,
  signal: AbortSignal,
): Promise<RunResult> {
  const { options, clock, log, graceSeconds, runs } = ctx;
  if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
  let ready = worker;
  if (!metaOf(worker, "host") || !metaOf(worker, "hostKeySha256") || !metaOf(worker, "zone")) {
    // A worker from list() (after a restart) lacks what only create() learns; look again.
    const [found] = (await ctx.findJobInstances(worker.jobId)).filter((f) => !DEAD_STATES.has(String(f.instance.status)));
    if (!found) return { outcome: "error", message: `the VM for job ${worker.jobId} is gone (preempted or deleted)`, computeSeconds: 0, aborted: false };
    ready = await ctx.awaitReady(found.zone, found.instance, clock.now() + options.bootTimeoutSeconds * 1000, signal);
  }
  const expiresAt = Number(metaOf(ready, "expiresAt") ?? NaN) * 1000;
  // The VM deletes itself at expires-at; stop the worker a little earlier so it can still report.
  const maxSeconds = Number.isFinite(expiresAt) ? Math.floor((expiresAt - clock.now()) / 1000) - graceSeconds : spec.agentTimeoutSeconds + graceSeconds;
  if (maxSeconds <= 0) return { outcome: "timed_out", message: `VM ${ready.id} is past its time limit`, computeSeconds: 0, aborted: false };

  const delivered = await deliverToken(ctx, worker.jobId, spec, maxSeconds);

  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  const target: VmSshTarget = {
    host: ready.meta.host!,
    port: Number(ready.meta.port ?? ctx.sshPort),
    username: options.ssh.username,
    privateKey: options.ssh.privateKey,
    hostKeySha256: ready.meta.hostKeySha256!,
  };
  const done = ctx.runOnVm(target, {
    workDir: remoteJobDir(ctx.remoteWorkRoot, worker.jobId),
    input: delivered,
    onEvent,
    signal: stop.signal,
    maxSeconds,
    ...(delivered.token === spec.token ? {} : { redactToken: spec.token }),
  });
  const entry: RunningJob = { stop, done: done.catch(() => undefined), destroying: false };
  runs.set(worker.jobId, entry);
  const zone = ready.meta.zone!;
  const name = ready.meta.instanceName ?? ready.id;
  // The VM is watched through the Compute API while the worker runs: a preempted spot VM is
  // known from its status and GCE's preemption record, not guessed from a dead SSH session.
  const watching = new AbortController();
  let lostWhy: string | null = null;
  const watcher = watchVm(ctx, zone, name, watching.signal).then((why) => {
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
      lostWhy = await lossOf(ctx, zone, name).catch(() => null);
    }
    if (lostWhy) return { ...result, outcome: "error", aborted: false, message: lostWhy, lost: { reason: lostWhy } };
    return result;
  } finally {
    watching.abort();
    signal.removeEventListener("abort", onAbort);
    if (runs.get(worker.jobId) === entry) runs.delete(worker.jobId);
  }
}

/**
 * The worker's input as it travels: with `secret-manager` delivery the token goes into the job's
 * secret and the input only names it. Not when the agent shares the VM's network (sandbox off or
 * shareNet): it could then ask the metadata server for the VM's identity and read the secret
 * itself, so the token stays on stdin, where the agent cannot reach it.
 */
async function deliverToken(ctx: RunOnVmContext, jobId: string, spec: RunSpec, maxSeconds: number): Promise<RunSpec> {
  if (ctx.tokenDelivery !== "secret-manager" || !spec.token || spec.noSecrets) return spec;
  if (spec.sandbox.kind !== "bwrap" || spec.sandbox.shareNet) {
    ctx.log?.warn(
      { jobId },
      "the agent shares the VM's network, so the token goes over SSH stdin instead of Secret Manager (the agent could read the secret with the VM's identity)",
    );
    return spec;
  }
  // The secret outlives the run by the grace only: the TTL deletes it if teardown and sweeps all miss.
  const secret = await ctx.secrets!.put(jobId, spec.token, { ttlSeconds: Math.ceil(maxSeconds + ctx.graceSeconds) });
  return { ...spec, token: "", tokenFrom: { secretVersion: `${secret}/versions/latest`, ...(ctx.options.tokenEndpoints ?? {}) } };
}
