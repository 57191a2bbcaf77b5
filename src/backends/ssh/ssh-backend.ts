/**
 * The `ssh` backend: existing machines, each with a number of slots. A worker is one folder
 * `<workRoot>/<jobId>` on one host (default `~/agent-work/<jobId>`) and, while it runs, one process
 * group there (src/remote/run-worker-over-ssh.ts). One pooled connection per host carries every
 * job's channels; a circuit breaker per host skips a host that keeps failing, for a cool-down, then
 * lets one operation through as a trial.
 *
 * Everything is found again on the hosts themselves (the folders are the truth), so a controller
 * that restarts sees the same workers, slots and orphans as the one before it. The health check
 * (node, git and the sandbox's tools on each host) is in check-ssh-health.ts.
 */
import type { NodeSSH } from "node-ssh";
import { checkRemoteWorkDir, remoteJobDir } from "../../remote/remote-work-dir.js";
import { removeRemoteWorkDir } from "../../remote/remove-remote-work-dir.js";
import { runWorkerOverSsh } from "../../remote/run-worker-over-ssh.js";
import { isConnectionAlive, SshPool, type SshPoolLog, type SshTarget } from "../../remote/ssh-pool.js";
import type { HostKeyMemory } from "../../remote/host-key-memory.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import { IncompleteListError } from "../incomplete-list-error.js";
import type { Backend, BackendModule, JobSpec, RunResult, RunSpec, Worker } from "../types.js";
import { checkSshHealth, type SshHealthOptions, type SshHostHealth } from "./check-ssh-health.js";
import { CircuitBreaker, type CircuitState } from "./circuit-breaker.js";
import { claimJobDir, listJobDirs, type FoundJobDir, type HostRecord } from "./host-records.js";

export type { SshHealthOptions, SshHostHealth } from "./check-ssh-health.js";

export interface SshHostOptions {
  /** Unique; names the host in worker ids, logs and health reports. */
  name: string;
  address: string;
  port: number;
  user: string;
  /** The private key itself (OpenSSH or PEM), not a path: loadSshHosts() reads key files. */
  privateKey: string;
  /** Jobs that may run on the host at once. */
  slots: number;
  labels: string[];
  /** `SHA256:…` as `ssh-keygen -lf` prints it; unset: the first key seen is remembered (`hostKeys`) and required from then on. */
  hostKeySha256?: string;
  /** Node on the host (default `node` on the login PATH). */
  nodePath?: string;
  /** Folder of the job folders, relative to the login user's home or absolute (default `agent-work`). */
  workRoot?: string;
}

export interface SshBackendOptions {
  hosts: SshHostOptions[];
  now?: () => number;
  /** Failures in a row that open a host's circuit (default 3). */
  failureThreshold?: number;
  /** How long an open circuit skips its host before one trial (default 60 000 ms). */
  coolDownMs?: number;
  connectTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL when a run is stopped or a worker destroyed (default 5000). */
  killGraceMs?: number;
  log?: SshPoolLog & { info(obj: object, msg: string): void };
  /** A pool to share (the gce backend has its own); the backend makes one by default. */
  pool?: SshPool;
  /**
   * Where host keys seen on first use are remembered, for hosts the file pins none for: the store
   * in the controller and the CLI (so every process and restart refuses a changed key); this
   * process's memory by default. Used by the pool the backend makes.
   */
  hostKeys?: HostKeyMemory;
}

export interface SshBackend extends Backend {
  /** Connects to every host whose circuit allows it and checks node, git and bwrap there. */
  checkHealth(options?: SshHealthOptions): Promise<SshHostHealth[]>;
  /** Circuit state per host, without touching the network. */
  circuits(): Record<string, CircuitState>;
  /** Closes the pooled connections (at controller shutdown). */
  close(): Promise<void>;
}

const NAME = "ssh";

interface Host {
  options: SshHostOptions;
  target: SshTarget;
  workRoot: string;
  breaker: CircuitBreaker;
  /** Slots promised to creates still under way, so two creates do not take the last one twice. */
  reserved: number;
}

/** A host was skipped because its circuit is open; not a failure of its own. */
class HostSkipped extends Error {}

export function createSshBackend(options: SshBackendOptions): SshBackend {
  const now = options.now ?? Date.now;
  const graceMs = options.killGraceMs ?? 5000;
  const log = options.log;
  const ownPool = options.pool === undefined;
  const pool =
    options.pool ??
    new SshPool({
      ...(options.connectTimeoutMs ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      ...(log ? { log } : {}),
      ...(options.hostKeys ? { hostKeys: options.hostKeys } : {}),
      pins: {
        source: "SSH_HOSTS_FILE",
        advice: (presented) => `set hostKeySha256: ${presented} for it in SSH_HOSTS_FILE and restart (a pin replaces what was remembered)`,
      },
    });
  const names = new Set<string>();
  const hosts: Host[] = options.hosts.map((h) => {
    if (names.has(h.name)) throw new Error(`two SSH hosts are named ${JSON.stringify(h.name)}; names must be unique`);
    names.add(h.name);
    const target: SshTarget = {
      host: h.address,
      port: h.port,
      username: h.user,
      privateKey: h.privateKey,
      ...(h.hostKeySha256 ? { hostKeySha256: h.hostKeySha256 } : {}),
    };
    return {
      options: h,
      target,
      workRoot: checkRemoteWorkDir(h.workRoot ?? "agent-work"),
      breaker: new CircuitBreaker({ failureThreshold: options.failureThreshold ?? 3, coolDownMs: options.coolDownMs ?? 60_000, now }),
      reserved: 0,
    };
  });
  const byName = new Map(hosts.map((h) => [h.options.name, h]));
  /** A job that asks for host labels goes only to hosts carrying all of them. */
  const carries = (host: Host, labels: readonly string[] | undefined) => (labels ?? []).every((l) => host.options.labels.includes(l));

  /**
   * Runs `fn` on a host's pooled connection through its circuit breaker. A connection that broke
   * is dropped from the pool so the next call connects afresh. `existing` work (running or
   * destroying a worker that is already on the host) is tried even while the circuit is open:
   * the breaker keeps new work away from a failing host, it must not strand what is there.
   */
  async function onHost<T>(host: Host, fn: (conn: NodeSSH) => Promise<T>, options: { existing?: boolean } = {}): Promise<T> {
    const done = host.breaker.tryAcquire() ?? (options.existing ? host.breaker.record : null);
    if (!done)
      throw new HostSkipped(
        `${host.options.name}: skipped for now after ${host.breaker.consecutiveFailures} failures in a row (${host.breaker.lastFailure ?? "unknown error"})`,
      );
    let conn: NodeSSH | undefined;
    try {
      conn = await pool.connection(host.target);
      const value = await fn(conn);
      done({ ok: true });
      return value;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      done({ ok: false, error: message });
      if (conn && !isConnectionAlive(conn)) pool.discard(host.target, conn);
      const before = host.breaker.state;
      if (before !== "closed")
        log?.warn({ host: host.options.name, err: message, circuit: before }, "SSH host failing; skipped until its cool-down has passed");
      throw err;
    }
  }

  function workerOf(host: Host, record: HostRecord): Worker {
    return {
      id: `${NAME}-${host.options.name}-${record.jobId}`,
      backend: NAME,
      jobId: record.jobId,
      createdAt: record.createdAt,
      meta: {
        host: host.options.name,
        workDir: remoteJobDir(host.workRoot, record.jobId),
        repoFullName: record.repoFullName,
        maxSeconds: String(record.maxSeconds),
      },
    };
  }

  /** A folder without a readable record (a create cut short) is still listed, so the reaper can remove it. */
  function workerOfDir(host: Host, dir: FoundJobDir): Worker {
    const w = workerOf(host, dir.record ?? { jobId: dir.jobId, repoFullName: "", createdAt: 0, maxSeconds: 0 });
    if (!dir.record) w.meta.incomplete = "true";
    return w;
  }

  async function listHost(host: Host): Promise<FoundJobDir[]> {
    return onHost(host, (conn) => listJobDirs(conn, host.workRoot));
  }

  async function list(): Promise<Worker[]> {
    const workers: Worker[] = [];
    const unreachable: string[] = [];
    await Promise.all(
      hosts.map(async (host) => {
        try {
          for (const dir of await listHost(host)) {
            // Names the job id rules refuse are not this backend's folders.
            if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(dir.jobId)) workers.push(workerOfDir(host, dir));
          }
        } catch (err) {
          unreachable.push(err instanceof HostSkipped ? err.message : `${host.options.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }),
    );
    if (unreachable.length > 0) throw new IncompleteListError(workers, unreachable);
    return workers;
  }

  async function create(job: JobSpec, signal: AbortSignal): Promise<Worker> {
    signal.throwIfAborted();
    remoteJobDir("agent-work", job.jobId); // refuses an unusable id before any host is touched
    // One listing per host answers both questions: is this job already somewhere, and how full is each host.
    const seen = await Promise.all(
      hosts.map(async (host) => {
        try {
          return { host, dirs: await listHost(host), error: null };
        } catch (err) {
          return { host, dirs: null, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    signal.throwIfAborted();
    for (const { host, dirs } of seen) {
      const mine = dirs?.find((d) => d.jobId === job.jobId);
      if (mine) return adopt(host, job, mine);
    }
    const candidates = seen
      .filter((s): s is { host: Host; dirs: FoundJobDir[]; error: null } => s.dirs !== null && carries(s.host, job.hostLabels))
      .map(({ host, dirs }) => ({ host, free: host.options.slots - dirs.length - host.reserved }))
      .filter((c) => c.free > 0)
      // The emptiest host first, so jobs spread; ties keep the configured order.
      .sort((a, b) => b.free - a.free);
    const chosen = candidates[0]?.host;
    if (!chosen) {
      const labelled = seen.filter((s) => carries(s.host, job.hostLabels));
      const wanted = job.hostLabels?.length ? ` labelled ${job.hostLabels.join(", ")}` : "";
      if (labelled.length === 0)
        throw new Error(
          `no SSH host is labelled ${job.hostLabels!.join(", ")} for job ${job.jobId} (hosts: ${hosts.map((h) => `${h.options.name} [${h.options.labels.join(", ")}]`).join("; ")})`,
        );
      const why = labelled.map((s) => (s.error ? s.error : `${s.host.options.name}: ${s.dirs!.length + s.host.reserved}/${s.host.options.slots} slots taken`));
      throw new Error(`no SSH host${wanted} has a free slot for job ${job.jobId} (${why.join("; ")})`);
    }
    chosen.reserved += 1;
    try {
      const { record, created } = await onHost(chosen, (conn) => claimJobDir(conn, chosen.workRoot, job, now()));
      if (created) log?.info({ jobId: job.jobId, host: chosen.options.name }, "ssh worker folder created");
      return workerOf(chosen, record);
    } finally {
      chosen.reserved -= 1;
    }
  }

  async function adopt(host: Host, job: JobSpec, dir: FoundJobDir): Promise<Worker> {
    if (dir.record) return workerOf(host, dir.record);
    // A folder without its record: finish what the earlier create started.
    const { record } = await onHost(host, (conn) => claimJobDir(conn, host.workRoot, job, now()));
    return workerOf(host, record);
  }

  function hostOf(worker: Worker): Host {
    const host = byName.get(worker.meta.host ?? "");
    if (!host) throw new Error(`worker ${worker.id} is on SSH host ${JSON.stringify(worker.meta.host)}, which is not configured`);
    return host;
  }

  async function run(worker: Worker, spec: RunSpec, onEvent: (e: ProgressEvent) => void, signal: AbortSignal): Promise<RunResult> {
    const host = hostOf(worker);
    if (signal.aborted) return { outcome: "error", message: "stopped", computeSeconds: 0, aborted: true };
    const maxSeconds = Number(worker.meta.maxSeconds ?? 0);
    // The dead-man switch counts from create(), like a VM's maxRunDuration counts from boot.
    const remainingSeconds = maxSeconds > 0 ? (worker.createdAt + maxSeconds * 1000 - now()) / 1000 : 24 * 3600;
    if (remainingSeconds <= 0) return { outcome: "timed_out", message: `the worker is past its ${maxSeconds}s limit`, computeSeconds: 0, aborted: false };
    return onHost(
      host,
      async (conn) => {
        const result = await runWorkerOverSsh(conn, {
          workDir: remoteJobDir(host.workRoot, worker.jobId),
          input: spec,
          onEvent,
          signal,
          maxSeconds: remainingSeconds,
          killGraceMs: graceMs,
          now,
          ...(host.options.nodePath ? { nodePath: host.options.nodePath } : {}),
        });
        // The run's own outcome is the job's business; a connection that broke under it is the host's.
        if (!isConnectionAlive(conn))
          throw Object.assign(new Error(`lost the SSH connection to ${host.options.name} while the worker ran: ${result.message}`), { result });
        return result;
      },
      { existing: true },
    ).catch((err: Error & { result?: RunResult }) => {
      if (err.result) return err.result;
      throw err;
    });
  }

  async function destroy(worker: Worker): Promise<void> {
    // A worker that names no host (a record from elsewhere) is looked for on every host.
    const targets = worker.meta.host ? [hostOf(worker)] : hosts;
    const dir = (host: Host) => remoteJobDir(host.workRoot, worker.jobId);
    const failures: string[] = [];
    await Promise.all(
      targets.map((host) =>
        onHost(host, (conn) => removeRemoteWorkDir(conn, dir(host), { graceMs }), { existing: worker.meta.host !== undefined }).catch((err: Error) => {
          failures.push(`${host.options.name}: ${err.message}`);
        }),
      ),
    );
    if (failures.length > 0) throw new Error(`could not destroy worker ${worker.id}: ${failures.join("; ")}`);
  }

  async function capacity(need: Pick<JobSpec, "hostLabels"> = {}): Promise<{ max: number; active: number }> {
    let max = 0;
    let active = 0;
    await Promise.all(
      hosts.map(async (host) => {
        if (host.breaker.state === "open" || !carries(host, need.hostLabels)) return;
        try {
          const dirs = await listHost(host);
          max += host.options.slots;
          active += dirs.length;
        } catch {
          // an unreachable host offers no slots
        }
      }),
    );
    return { max, active };
  }

  return {
    name: NAME,
    capacity,
    create,
    run,
    destroy,
    list,
    checkHealth: (healthOptions) => checkSshHealth({ hosts, onHost }, healthOptions),
    circuits: () => Object.fromEntries(hosts.map((h) => [h.options.name, h.breaker.state])),
    close: async () => {
      if (ownPool) await pool.close();
    },
  };
}

export const ssh = {
  name: NAME,
  create: (opts: SshBackendOptions): SshBackend => createSshBackend(opts),
} satisfies BackendModule<SshBackendOptions>;
