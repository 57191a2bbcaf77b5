/**
 * What the gce backend is made from: its options, its logger, and how the worker script reaches a
 * VM. Types only, so every file of the backend can name them without importing the backend.
 */
import type { SshPool } from "../../remote/ssh-pool.js";
import type { ProgressEvent } from "../../worker/protocol.js";
import type { RunResult, RunSpec } from "../types.js";
import type { Clock } from "./backoff.js";
import type { InstanceSettings } from "./build-instance.js";
import type { ComputeApi, GcpClientOptions } from "./compute-api.js";
import type { JobSecrets } from "./job-secrets.js";
import type { SshProbe } from "./wait-for-ssh.js";

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

/** Runs the worker script on a VM over SSH; the default is `runOnVmOverSsh` (run-on-vm.ts). */
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
  /**
   * Hedge a take (GCE_POOL_HEDGE): resume two parked VMs, keep the first to answer SSH and park
   * the other again (pool-take.ts). Only when no other take is under way. Default false here;
   * the controller's configuration turns it on by default.
   */
  poolHedge?: boolean;
  /** Seconds between looks at a running job's VM, to notice a preemption (default 15). */
  watchSeconds?: number;
  /** How long a zone operation may take (default 300). */
  operationTimeoutSeconds?: number;
}
