/**
 * When a VM is ready for its job: RUNNING, answering SSH, and showing a host key we can trust,
 * checked against the keys its guest agent published (read through the Compute API, not taken
 * from the network: internal addresses are reused by later VMs), or pinned on first use when the
 * backend is configured so.
 */
import type { Worker } from "../types.js";
import type { Backoff, Clock } from "./backoff.js";
import type { ComputeApi, GceInstance } from "./compute-api.js";
import type { GceBackendOptions } from "./gce-backend-options.js";
import { DEAD_STATES, sshHost, workerFrom } from "./vm-worker.js";
import { fingerprintOfKeyBlob, waitForSsh, type SshProbe } from "./wait-for-ssh.js";

const READY_POLL = { initialMs: 1000, maxMs: 5000, multiplier: 1.5 };

/** How a resumed (or restarted) pool VM is checked, unlike a booted one. */
export interface ResumedVm {
  /** The host key it showed, and that was checked, when it was booted for the pool. */
  recordedHostKey?: string;
  /** Between SSH probes (a boot's backoff otherwise). */
  sshBackoff?: Backoff;
  /** How long one SSH probe may take (10 s otherwise). */
  sshProbeTimeoutMs?: number;
  /** How many SSH probes may wait for an answer at once (1 otherwise: each ends before the next goes). */
  sshConcurrentProbes?: number;
}

/** What the readiness check needs from the backend, passed in rather than reached for. */
export interface VmReadinessContext {
  options: GceBackendOptions;
  compute: ComputeApi;
  clock: Clock;
  probe: SshProbe;
  /** The port SSH is reached on (22 unless the options say otherwise). */
  sshPort: number;
  /** `options.ssh.hostKeys` with its default. */
  hostKeyPolicy: "guest-attributes" | "first-use";
  /** Retries transient failures of one call. */
  retry<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/**
 * Waits until the VM is RUNNING, answers SSH, and shows a host key we can trust: one its guest
 * agent published, or, for a resumed pool VM, `recordedHostKey`, the key it showed (and that was
 * checked) when it was booted for the pool. A VM showing any other key is refused.
 */
export async function awaitReady(
  ctx: VmReadinessContext,
  zone: string,
  instance: GceInstance,
  deadline: number,
  signal: AbortSignal,
  resumed: ResumedVm = {},
): Promise<Worker> {
  const { options, compute, clock, probe, sshPort, hostKeyPolicy, retry } = ctx;
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
  const host = sshHost(options, current);
  if (!host) throw new Error(`VM ${name} has no ${options.externalIp ? "external" : "internal"} address to reach SSH on`);
  const seen = await waitForSsh({
    host,
    port: sshPort,
    probe,
    clock,
    deadline,
    signal,
    ...(resumed.sshBackoff ? { backoff: resumed.sshBackoff } : {}),
    ...(resumed.sshProbeTimeoutMs ? { probeTimeoutMs: resumed.sshProbeTimeoutMs } : {}),
    ...(resumed.sshConcurrentProbes ? { concurrent: resumed.sshConcurrentProbes } : {}),
  });
  let hostKeySha256: string;
  if (resumed.recordedHostKey) {
    // Suspend and stop keep the disk and the instance, so the guest agent keeps the host key it
    // made at the first boot: a different one is another machine (or a rebuilt one), never trusted.
    if (seen !== resumed.recordedHostKey) {
      throw new Error(`VM ${name} showed SSH host key ${seen}, but ${resumed.recordedHostKey} when it was booted for the pool; refusing to use it`);
    }
    hostKeySha256 = seen;
  } else {
    hostKeySha256 = hostKeyPolicy === "first-use" ? seen : await publishedHostKey(ctx, zone, name, seen, deadline, signal);
  }
  return workerFrom(options, zone, current, { port: String(sshPort), hostKeySha256, username: options.ssh.username });
}

/** The guest agent's published host keys must include the one SSH showed; returns it. */
async function publishedHostKey(ctx: VmReadinessContext, zone: string, name: string, seen: string, deadline: number, signal: AbortSignal): Promise<string> {
  const { compute, clock, retry } = ctx;
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
