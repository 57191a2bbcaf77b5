/**
 * One SSH connection per host, shared by every job on it (each job opens channels on it), with the
 * host key pinned. A connection that breaks is dropped from the pool and the next caller connects
 * again; a caller that fails because the connection broke can `discard()` it and retry once.
 */
import { createHash } from "node:crypto";
import { NodeSSH } from "node-ssh";

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /** The client's private key (PEM or OpenSSH format), never a path. */
  privateKey: string;
  /**
   * The host key's fingerprint as `ssh-keygen -lf <key>.pub` prints it (`SHA256:…`). Unset: the
   * first key seen is recorded and pinned for the life of this pool (trust on first use), and a
   * warning says which fingerprint to configure.
   */
  hostKeySha256?: string;
}

export interface SshPoolLog {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface SshPoolOptions {
  /** Handshake timeout (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Keepalive interval; a dead peer is noticed after 3 missed replies (default 10 000 ms). */
  keepaliveIntervalMs?: number;
  log?: SshPoolLog;
}

/** `SHA256:<base64 without padding>` of a raw SSH public key blob, the way OpenSSH shows it. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** Accepts `SHA256:abc…`, `abc…` and padded base64, so an operator can paste what their tool printed. */
export function normaliseFingerprint(value: string): string {
  const bare = value.trim().replace(/^SHA256:/i, "").replace(/=+$/, "");
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
  private readonly recorded = new Map<string, string>();
  private closed = false;

  constructor(private readonly options: SshPoolOptions = {}) {}

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

  /** The fingerprint this pool pinned for a target that configured none. */
  recordedHostKey(target: Pick<SshTarget, "host" | "port">): string | undefined {
    return this.recorded.get(`${target.host}:${target.port}`);
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
    const expected = target.hostKeySha256 ? normaliseFingerprint(target.hostKeySha256) : this.recorded.get(hostPort);
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
        throw new Error(
          `the SSH host key of ${hostPort} is ${seen}, not the pinned ${expected}; refusing to connect (if the host was rebuilt, check it and configure the new fingerprint)`,
        );
      }
      const message = err instanceof Error ? err.message : String(err);
      const code = (err as { code?: string }).code;
      throw Object.assign(new Error(`cannot connect to ${target.username}@${hostPort}: ${message}`), { code, cause: err });
    }
    if (expected === undefined && seen !== undefined) {
      this.recorded.set(hostPort, seen);
      log?.warn({ host: hostPort, hostKeySha256: seen }, "SSH host key not configured; pinned the key seen on first connection (configure hostKeySha256 to pin it across restarts)");
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
}
