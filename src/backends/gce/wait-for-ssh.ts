/**
 * Waiting for a new VM's SSH server, and learning which host key it presents, without logging in:
 * the probe stops the handshake right after the server has shown its key.
 */
import { createHash } from "node:crypto";
import { NodeSSH } from "node-ssh";
import { backoffDelay, type Backoff, type Clock } from "./backoff.js";

/** Resolves with the server's host key fingerprint (`SHA256:<base64>`), or rejects while SSH is not up. */
export type SshProbe = (host: string, port: number, timeoutMs: number) => Promise<string>;

export const SSH_BACKOFF: Backoff = { initialMs: 2000, maxMs: 10_000, multiplier: 1.5 };

/** `SHA256:<base64 without padding>` of a raw SSH public key blob, as `ssh-keygen -l` prints it. */
export function fingerprintOfKeyBlob(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The real probe: an SSH handshake that ends, on purpose, once the server's host key is known. */
export const probeSshHostKey: SshProbe = async (host, port, timeoutMs) => {
  const ssh = new NodeSSH();
  let seen: string | undefined;
  try {
    await ssh.connect({
      host,
      port,
      // No credentials are sent: the handshake is refused by us before authentication.
      username: "agent-work-probe",
      password: "unused",
      tryKeyboard: false,
      readyTimeout: timeoutMs,
      hostVerifier: (key: Buffer) => {
        seen = fingerprintOfKeyBlob(key);
        return false;
      },
    });
  } catch (err) {
    if (seen) return seen;
    throw err;
  } finally {
    ssh.dispose();
  }
  if (seen) return seen;
  throw new Error(`the SSH server on ${host}:${port} ended the handshake without showing a host key`);
};

/**
 * Probes `host:port` with backoff until SSH answers, and returns the host key it showed.
 * Throws at the deadline with the last error, or when the signal aborts.
 */
export async function waitForSsh(options: {
  host: string;
  port: number;
  probe: SshProbe;
  clock: Clock;
  /** Epoch ms. */
  deadline: number;
  signal?: AbortSignal;
  backoff?: Backoff;
  /** The longest one probe may take (10 s by default, and never more than the time left). */
  probeTimeoutMs?: number;
}): Promise<string> {
  const { host, port, probe, clock, deadline, signal } = options;
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    const left = deadline - clock.now();
    if (left <= 0) {
      const why = lastError instanceof Error ? lastError.message : String(lastError ?? "no attempt finished");
      throw new Error(`SSH on ${host}:${port} did not answer before the boot deadline (last error: ${why})`);
    }
    try {
      return await probe(host, port, Math.min(options.probeTimeoutMs ?? 10_000, Math.max(1000, left)));
    } catch (err) {
      lastError = err;
    }
    await clock.sleep(Math.min(backoffDelay(attempt, options.backoff ?? SSH_BACKOFF, clock.random), Math.max(0, deadline - clock.now())), signal);
  }
}
