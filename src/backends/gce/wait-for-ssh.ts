/**
 * Waiting for a new VM's SSH server, and learning which host key it presents, without logging in:
 * the probe stops the handshake right after the server has shown its key.
 */
import { createHash } from "node:crypto";
import { NodeSSH } from "node-ssh";
import { backoffDelay, type Backoff, type Clock } from "./backoff.js";

/**
 * Resolves with the server's host key fingerprint (`SHA256:<base64>`), or rejects while SSH is not
 * up. Calls `onConnected` once its TCP connection is made, when it can tell: from then on it is a
 * handshake under way, not a SYN that may never be answered.
 */
export type SshProbe = (host: string, port: number, timeoutMs: number, onConnected?: () => void) => Promise<string>;

export const SSH_BACKOFF: Backoff = { initialMs: 2000, maxMs: 10_000, multiplier: 1.5 };

/** `SHA256:<base64 without padding>` of a raw SSH public key blob, as `ssh-keygen -l` prints it. */
export function fingerprintOfKeyBlob(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The real probe: an SSH handshake that ends, on purpose, once the server's host key is known. */
export const probeSshHostKey: SshProbe = async (host, port, timeoutMs, onConnected) => {
  const ssh = new NodeSSH();
  let seen: string | undefined;
  try {
    const connecting = ssh.connect({
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
    // node-ssh makes its ssh2 client before its first await; ssh2 says `connect` once TCP is up.
    if (onConnected) ssh.connection?.once("connect", onConnected);
    await connecting;
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
 *
 * With `concurrent` above 1 the next probe goes after the backoff delay even while earlier ones
 * still wait for a connection (at most that many at once), and the first key shown wins: a probe
 * sent while the VM's network is not back yet may hear nothing at all until its timeout (its SYN
 * is dropped, not refused), and the VM must not wait behind it. Once a probe is connected no other
 * goes until it ends: it is a handshake under way, and more of them would only share the CPU with
 * it. With 1, each probe ends before the delay to the next one starts.
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
  /** How many probes may wait for an answer at once (1 by default). */
  concurrent?: number;
}): Promise<string> {
  const { host, port, probe, clock, deadline, signal } = options;
  const most = Math.max(1, options.concurrent ?? 1);
  let lastError: unknown;
  let seen: string | undefined;
  let shown: () => void = () => undefined;
  const keyShown = new Promise<void>((resolve) => (shown = resolve));
  const inFlight = new Set<Promise<void>>();
  /** Probes in flight whose TCP connection is made. */
  let handshaking = 0;
  // A sleep ends early when a key is shown or the signal aborts (checked after it), and none outlives the answer.
  const done = new AbortController();
  const sleep = async (ms: number) => {
    const slept = clock.sleep(ms, signal ? AbortSignal.any([signal, done.signal]) : done.signal).catch(() => undefined);
    await Promise.race([slept, keyShown]);
    signal?.throwIfAborted();
  };
  try {
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      if (seen) return seen;
      const left = deadline - clock.now();
      if (left <= 0) {
        const why = lastError instanceof Error ? lastError.message : String(lastError ?? "no attempt finished");
        throw new Error(`SSH on ${host}:${port} did not answer before the boot deadline (last error: ${why})`);
      }
      let connected = false;
      let settled = false;
      const onConnected = () => {
        if (connected || settled) return;
        connected = true;
        handshaking++;
      };
      const attempted: Promise<void> = probe(host, port, Math.min(options.probeTimeoutMs ?? 10_000, Math.max(1000, left)), onConnected)
        .then(
          (key) => {
            seen ??= key;
            shown();
          },
          (err: unknown) => void (lastError = err),
        )
        .finally(() => {
          settled = true;
          inFlight.delete(attempted);
          if (connected) handshaking--;
        });
      inFlight.add(attempted);
      if (most === 1) await attempted;
      if (seen) return seen;
      await sleep(Math.min(backoffDelay(attempt, options.backoff ?? SSH_BACKOFF, clock.random), Math.max(0, deadline - clock.now())));
      while (!seen && (inFlight.size >= most || handshaking > 0)) await Promise.race([keyShown, ...inFlight]);
    }
  } finally {
    done.abort();
  }
}
