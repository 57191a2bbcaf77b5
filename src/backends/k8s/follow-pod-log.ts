/**
 * Follows one container's log until the container has stopped and every line has been read,
 * across connections that break or that the API server ends early (kubelet streams have idle and
 * total timeouts). Lines are asked for with timestamps; a reconnect asks from the last line's
 * second and skips what was already delivered, so no line is lost and none is read twice.
 */
import { classifyKubeError } from "./classify-k8s-error.js";
import type { KubeApi } from "./kube-api.js";

export interface FollowPodLogOptions {
  namespace: string;
  pod: string;
  container: string;
  /** One log line, without its timestamp or newline. */
  onLine: (line: string) => void;
  /** True while the container may still write (not yet terminated). Asked after each stream ends. */
  containerRunning: () => Promise<boolean>;
  /** Stops following (the run was stopped); resolves quietly. */
  signal: AbortSignal;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Connections after the first one (default 20). */
  maxReconnects?: number;
  /** Before a reconnect (default 500). */
  reconnectDelayMs?: number;
  onReconnect?: (why: string) => void;
}

export interface FollowPodLogResult {
  /** True when the log was read to its end; false when it was abandoned (stopped, or reconnects ran out). */
  complete: boolean;
  reconnects: number;
  /** Why the last connection failed, when it did. */
  lastError?: string;
}

/** `2024-05-01T10:00:00.123456789Z` → nanoseconds since the epoch; null if it is not a timestamp. */
export function timestampNanos(ts: string): bigint | null {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return null;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(seconds)) return null;
  return BigInt(seconds) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

/** The whole second a timestamp falls in, as `sinceTime` takes it. */
function wholeSecond(nanos: bigint): string {
  return new Date(Number(nanos / 1_000_000_000n) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export async function followPodLog(api: KubeApi, o: FollowPodLogOptions): Promise<FollowPodLogResult> {
  const maxReconnects = o.maxReconnects ?? 20;
  /** The newest timestamp delivered, and how many lines carried exactly it. */
  // (a cast: it is only assigned inside the chunk callback, which narrowing cannot see)
  let last = null as { nanos: bigint; count: number } | null;
  let reconnects = 0;
  let lastError: string | undefined;

  for (;;) {
    if (o.signal.aborted) return { complete: false, reconnects, ...(lastError ? { lastError } : {}) };
    // On a reconnect, lines at or before the last one delivered are skipped; lines sharing its
    // exact timestamp are skipped as many times as they were delivered.
    const skip = last ? { nanos: last.nanos, count: last.count } : null;
    let seenAtSkip = 0;
    let buffered = "";
    const deliver = (raw: string) => {
      const space = raw.indexOf(" ");
      const nanos = space > 0 ? timestampNanos(raw.slice(0, space)) : null;
      if (nanos === null) {
        // Not timestamped (a server that ignores the parameter): deliver as it is.
        o.onLine(raw);
        return;
      }
      const line = raw.slice(space + 1);
      if (skip) {
        if (nanos < skip.nanos) return;
        if (nanos === skip.nanos && seenAtSkip < skip.count) {
          seenAtSkip += 1;
          return;
        }
      }
      if (last && nanos === last.nanos) last.count += 1;
      else last = { nanos, count: 1 };
      o.onLine(line);
    };
    const decoder = new TextDecoder();
    let ended = false;
    try {
      await api.streamPodLog(
        { namespace: o.namespace, pod: o.pod, container: o.container, follow: true, timestamps: true, ...(skip ? { sinceTime: wholeSecond(skip.nanos) } : {}) },
        (chunk) => {
          buffered += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buffered.indexOf("\n")) >= 0) {
            deliver(buffered.slice(0, i));
            buffered = buffered.slice(i + 1);
          }
        },
        o.signal,
      );
      ended = true;
    } catch (err) {
      if (o.signal.aborted) return { complete: false, reconnects, ...(lastError ? { lastError } : {}) };
      const c = classifyKubeError(err);
      lastError = `${c.reason}: ${c.message}`;
      // A pod that is gone has no more log to give.
      if (c.kind === "not_found") return { complete: false, reconnects, lastError };
      if (c.kind === "fatal" && c.status !== 400) return { complete: false, reconnects, lastError };
    }
    buffered += decoder.decode();
    // A clean end with the container stopped is the end of the log, and a last line without a
    // newline is then whole; anything else reconnects, and the reconnect delivers that line again.
    if (ended && !(await o.containerRunning().catch(() => true))) {
      if (buffered !== "") deliver(buffered);
      return { complete: true, reconnects, ...(lastError ? { lastError } : {}) };
    }
    if (reconnects >= maxReconnects) return { complete: false, reconnects, lastError: lastError ?? "the log stream kept ending while the container ran" };
    reconnects += 1;
    o.onReconnect?.(ended ? "the API server ended the log stream while the container still ran" : (lastError ?? "the log stream failed"));
    try {
      await o.sleep(o.reconnectDelayMs ?? 500, o.signal);
    } catch {
      return { complete: false, reconnects, ...(lastError ? { lastError } : {}) };
    }
  }
}
