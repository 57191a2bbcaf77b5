/**
 * Where SSH host keys seen on first use are remembered, for hosts configured without a pinned
 * fingerprint. The controller and the ops CLI remember them in the store (src/store/ssh-host-keys.ts),
 * so a key that changes is refused across restarts and replicas; `inMemoryHostKeys()` remembers
 * them for one process only, which is enough where every key is pinned anyway (gce).
 */
export interface RememberedHostKey {
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** When it was first remembered (or pinned), epoch ms. */
  since: number;
}

export interface HostKeyMemory {
  /** The key remembered for `host:port`, if any. */
  recall(hostPort: string): Promise<RememberedHostKey | undefined>;
  /**
   * Remembers `fingerprint` for `host:port` unless a key is remembered already, and returns the one
   * that stands: when two processes meet a new host at once, the first to write wins and the
   * other sees a different key (and refuses the host) rather than overwriting it.
   */
  remember(hostPort: string, fingerprint: string): Promise<RememberedHostKey>;
  /** Replaces what is remembered: the operator pinned this key in the hosts file. */
  pin(hostPort: string, fingerprint: string): Promise<void>;
}

export function inMemoryHostKeys(now: () => number = Date.now): HostKeyMemory {
  const keys = new Map<string, RememberedHostKey>();
  return {
    recall: async (hostPort) => keys.get(hostPort),
    async remember(hostPort, fingerprint) {
      const existing = keys.get(hostPort);
      if (existing) return existing;
      const fresh = { fingerprint, since: now() };
      keys.set(hostPort, fresh);
      return fresh;
    },
    async pin(hostPort, fingerprint) {
      if (keys.get(hostPort)?.fingerprint !== fingerprint) keys.set(hostPort, { fingerprint, since: now() });
    },
  };
}
