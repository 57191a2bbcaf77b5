/**
 * One SSH connection per host, shared by every job on it (each job opens channels on it), with the
 * host key pinned. A connection that breaks is dropped from the pool and the next caller connects
 * again; a caller that fails because the connection broke can `discard()` it and retry once.
 */
import { createHash } from "node:crypto";
import { NodeSSH } from "node-ssh";
import { inMemoryHostKeys, type HostKeyMemory, type RememberedHostKey } from "./host-key-memory.js";

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /** The client's private key (PEM or OpenSSH format), never a path. */
  privateKey: string;
  /**
   * The host key's fingerprint as `ssh-keygen -lf <key>.pub` prints it (`SHA256:…`). Unset: the
   * first key seen is remembered in the pool's HostKeyMemory (the store, for the ssh backend) and
   * required from then on (trust on first use), and a warning says which fingerprint to configure.
   */
  hostKeySha256?: string;
}

export interface SshPoolLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface SshPoolOptions {
  /** Handshake timeout (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Keepalive interval; a dead peer is noticed after 3 missed replies (default 10 000 ms). */
  keepaliveIntervalMs?: number;
  log?: SshPoolLog;
  /** Where keys seen on first use are remembered; one process's memory by default. */
  hostKeys?: HostKeyMemory;
  /**
   * Where pinned keys come from and how an operator changes one, for the message that refuses a
   * host whose key changed (default: "the configuration").
   */
  pins?: { source: string; advice(presented: string): string };
}

/** `SHA256:<base64 without padding>` of a raw SSH public key blob, the way OpenSSH shows it. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** Accepts `SHA256:abc…`, `abc…` and padded base64, so an operator can paste what their tool printed. */
export function normaliseFingerprint(value: string): string {
  const bare = value
    .trim()
    .replace(/^SHA256:/i, "")
    .replace(/=+$/, "");
  return `SHA256:${bare}`;
}

/** Connections that reported an error or an end; ssh2 may not have said `close` yet. */
const broken = new WeakSet<NodeSSH>();

/**
 * Whether a connection can still carry a command. node-ssh only notices a dead connection on
 * `end`/`close`, which can come a tick after the socket stopped being usable; ssh2 itself refuses
 * an exec on a socket that is no longer writable or whose reading side ended, so check the same.
 */
export function isConnectionAlive(ssh: NodeSSH): boolean {
  if (!ssh.isConnected() || broken.has(ssh)) return false;
  const sock = (ssh.connection as unknown as { _sock?: { writable?: boolean; _readableState?: { ended?: boolean } } } | null)?._sock;
  return sock === undefined || (sock.writable === true && sock._readableState?.ended !== true);
}

function keyOf(target: SshTarget): string {
  return `${target.username}@${target.host}:${target.port}`;
}

export class SshPool {
  private readonly connections = new Map<string, Promise<NodeSSH>>();
  /** Fingerprints seen on first use, by `host:port`, for targets that configure none. */
  private readonly hostKeys: HostKeyMemory;
  private closed = false;

  constructor(private readonly options: SshPoolOptions = {}) {
    this.hostKeys = options.hostKeys ?? inMemoryHostKeys();
  }

  /** The pooled connection to `target`, connecting (again) if there is none or it broke. */
  connection(target: SshTarget): Promise<NodeSSH> {
    if (this.closed) return Promise.reject(new Error("the SSH pool is closed"));
    const key = keyOf(target);
    const existing = this.connections.get(key);
    if (existing) {
      return existing.then(
        (ssh) => (isConnectionAlive(ssh) ? ssh : this.reconnect(key, target, existing)),
        () => this.reconnect(key, target, existing),
      );
    }
    return this.reconnect(key, target, undefined);
  }

  /**
   * Drops the pooled connection to `target` after an error that may have broken it; with `only`,
   * only if that is still the pooled one (another caller may have reconnected meanwhile, and
   * disposing theirs would cut every job's channels on it).
   */
  discard(target: SshTarget, only?: NodeSSH): void {
    const key = keyOf(target);
    const existing = this.connections.get(key);
    if (!existing) return;
    void existing
      .then((ssh) => {
        if (only !== undefined && ssh !== only) return;
        if (this.connections.get(key) === existing) this.connections.delete(key);
        ssh.dispose();
      })
      .catch(() => {
        if (only === undefined && this.connections.get(key) === existing) this.connections.delete(key);
      });
  }

  /** The fingerprint remembered for a target that configured none. */
  async recordedHostKey(target: Pick<SshTarget, "host" | "port">): Promise<string | undefined> {
    return (await this.hostKeys.recall(`${target.host}:${target.port}`))?.fingerprint;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((p) => p.then((ssh) => ssh.dispose()).catch(() => undefined)));
  }

  private reconnect(key: string, target: SshTarget, stale: Promise<NodeSSH> | undefined): Promise<NodeSSH> {
    const current = this.connections.get(key);
    // Another caller already replaced the stale connection: share theirs.
    if (current && current !== stale) return current;
    const next = this.connect(target);
    this.connections.set(key, next);
    next.catch(() => {
      if (this.connections.get(key) === next) this.connections.delete(key);
    });
    return next;
  }

  private async connect(target: SshTarget): Promise<NodeSSH> {
    const log = this.options.log;
    const hostPort = `${target.host}:${target.port}`;
    const pinned = target.hostKeySha256 ? normaliseFingerprint(target.hostKeySha256) : undefined;
    let remembered: RememberedHostKey | undefined;
    if (pinned === undefined) {
      try {
        remembered = await this.hostKeys.recall(hostPort);
      } catch (err) {
        // Without the remembered key there is nothing to check the host against: do not connect.
        throw new Error(
          `cannot read the SSH host key remembered for ${hostPort}, so it is not connected to: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
    const expected = pinned ?? remembered?.fingerprint;
    let seen: string | undefined;
    const ssh = new NodeSSH();
    try {
      await ssh.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        privateKey: target.privateKey,
        readyTimeout: this.options.connectTimeoutMs ?? 10_000,
        keepaliveInterval: this.options.keepaliveIntervalMs ?? 10_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          seen = hostKeyFingerprint(key);
          return expected === undefined || seen === expected;
        },
      });
    } catch (err) {
      ssh.dispose();
      if (expected !== undefined && seen !== undefined && seen !== expected) {
        throw this.hostKeyChanged(target, seen, pinned !== undefined ? { pinned } : { remembered: remembered! });
      }
      const message = err instanceof Error ? err.message : String(err);
      const code = (err as { code?: string }).code;
      throw Object.assign(new Error(`cannot connect to ${target.username}@${hostPort}: ${message}`), { code, cause: err });
    }
    if (expected === undefined && seen !== undefined) {
      let stands: RememberedHostKey;
      try {
        stands = await this.hostKeys.remember(hostPort, seen);
      } catch (err) {
        ssh.dispose();
        throw new Error(`cannot remember the SSH host key of ${hostPort} (${seen}), so it is not used: ${err instanceof Error ? err.message : String(err)}`);
      }
      // Another process met this host at the same moment and remembered a different key.
      if (stands.fingerprint !== seen) {
        ssh.dispose();
        throw this.hostKeyChanged(target, seen, { remembered: stands });
      }
      log?.warn(
        { host: hostPort, hostKeySha256: seen },
        `SSH host key of ${hostPort} not pinned: remembered ${seen} on first use, and any other key will be refused; check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it (${this.options.pins?.source ?? "the configuration"})`,
      );
    } else if (pinned !== undefined) {
      // A pin is the operator's word: what was remembered follows it, so removing the pin later keeps trusting this key.
      await this.hostKeys
        .pin(hostPort, pinned)
        .catch((err: unknown) => log?.warn({ host: hostPort, err }, "could not record the pinned SSH host key in the store"));
    }
    const client = ssh.connection;
    // ssh2 emits `error` on a broken socket; without a listener that would crash the controller.
    client?.on("error", (err: Error) => {
      broken.add(ssh);
      log?.debug({ host: hostPort, err }, "SSH connection error");
    });
    client?.on("end", () => broken.add(ssh));
    client?.on("close", () => {
      broken.add(ssh);
      log?.debug({ host: hostPort }, "SSH connection closed");
    });
    return ssh;
  }

  /**
   * The host answered with another key than the one pinned or remembered: refuse it, loudly. It may
   * be a rebuilt machine, or someone in the middle; only a person who checks the host can tell.
   */
  private hostKeyChanged(target: SshTarget, seen: string, was: { pinned: string } | { remembered: RememberedHostKey }): Error {
    const hostPort = `${target.host}:${target.port}`;
    const expected = "pinned" in was ? was.pinned : was.remembered.fingerprint;
    const pins = this.options.pins ?? { source: "the configuration", advice: (presented: string) => `configure ${presented} as its host key` };
    const source =
      "pinned" in was
        ? `the key pinned for it in ${pins.source} is ${expected}`
        : `${expected} was remembered on first use (${new Date(was.remembered.since).toISOString()})`;
    const message =
      `SSH host key of ${hostPort} changed: it presented ${seen}, but ${source}; refusing the host, no job runs there. ` +
      `Someone may be intercepting the connection, or the host was rebuilt: check the key on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) ` +
      `and, if ${seen} is what it prints, ${pins.advice(seen)}.`;
    this.options.log?.error({ host: hostPort, presented: seen, expected, source: "pinned" in was ? pins.source : "remembered on first use" }, message);
    return new Error(message);
  }
}
