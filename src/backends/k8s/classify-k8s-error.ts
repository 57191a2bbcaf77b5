/**
 * The one place that decides what a Kubernetes API error means for the k8s backend; everything
 * else branches on `kind`, never on status codes or message text.
 *
 * - `transient`: the same request may succeed later (429, 5xx, 408, a conflict, a dropped
 *   connection): retried with backoff, a few times.
 * - `not_found` / `already_exists`: answers, not failures, for idempotent delete and create.
 * - `fatal`: bad input or missing permission (other 4xx); retrying cannot help and the message
 *   says what to fix.
 */

export type KubeErrorKind = "transient" | "not_found" | "already_exists" | "fatal";

export interface ClassifiedKubeError {
  kind: KubeErrorKind;
  /** HTTP status, when the API server answered. */
  status?: number;
  /** The Status object's reason (NotFound, AlreadyExists, Forbidden...) or the socket error code. */
  reason: string;
  /** The API server's own message: names the object, never a Secret's data. */
  message: string;
}

const TRANSIENT_ERRNO = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ECONNABORTED",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
]);

interface KubeStatus {
  kind?: string;
  message?: string;
  reason?: string;
  code?: number;
}

/** client-node's ApiException carries the Status as JSON text (or already parsed). */
function statusOf(body: unknown): KubeStatus | undefined {
  if (typeof body === "object" && body !== null) return body as KubeStatus;
  if (typeof body !== "string" || !body.trimStart().startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(body) as unknown;
    return typeof parsed === "object" && parsed !== null ? (parsed as KubeStatus) : undefined;
  } catch {
    return undefined;
  }
}

function errnoOf(err: { code?: unknown; errno?: unknown; cause?: unknown }): string | undefined {
  for (const e of [err, err.cause as { code?: unknown; errno?: unknown } | undefined]) {
    if (typeof e?.code === "string") return e.code;
    if (typeof e?.errno === "string") return e.errno;
  }
  return undefined;
}

export function classifyKubeError(err: unknown): ClassifiedKubeError {
  if (typeof err !== "object" || err === null) return { kind: "fatal", reason: "Unknown", message: String(err) };
  const e = err as { code?: unknown; body?: unknown; message?: unknown; name?: unknown; cause?: unknown };
  if (e.name === "AbortError") return { kind: "fatal", reason: "Aborted", message: "the request was aborted" };

  if (typeof e.code === "number" && e.code >= 100) {
    const status = e.code;
    const s = statusOf(e.body);
    const reason = s?.reason ?? `HTTP${status}`;
    // ApiException's own message repeats the whole body and the headers; the Status message is enough.
    const message = s?.message ?? `the API server answered ${status}`;
    const base = { status, reason, message };
    if (status === 404) return { kind: "not_found", ...base };
    if (status === 409 && (reason === "AlreadyExists" || /already exists/i.test(message))) return { kind: "already_exists", ...base };
    if (status === 409 || status === 408 || status === 429 || status >= 500) return { kind: "transient", ...base };
    return { kind: "fatal", ...base };
  }

  const errno = errnoOf(e);
  const message = typeof e.message === "string" ? e.message : String(err);
  if (errno !== undefined && TRANSIENT_ERRNO.has(errno)) return { kind: "transient", reason: errno, message };
  if (/socket hang up|ECONNRESET|ECONNREFUSED|network timeout|request to .* failed/i.test(message))
    return { kind: "transient", reason: errno ?? "Network", message };
  return { kind: "fatal", reason: errno ?? "Unknown", message };
}

/** One line for logs and job messages: `Forbidden (403): jobs.batch is forbidden: ...`. */
export function describeKubeError(what: string, c: ClassifiedKubeError): string {
  const advice = c.status === 401 || c.status === 403 ? "; check the controller's credentials and its Role (k8s/rbac.yaml)" : "";
  return `${what}: ${c.reason}${c.status ? ` (${c.status})` : ""}: ${c.message}${advice}`;
}

/**
 * A failed Kubernetes call, with a message built from the Status (never client-node's own, which
 * repeats the request's headers). Callers branch on `kind` (retry, adopt, treat as gone).
 */
export class KubeCallError extends Error {
  readonly kind: KubeErrorKind;
  readonly status: number | undefined;
  readonly reason: string;
  constructor(what: string, classified: ClassifiedKubeError) {
    super(describeKubeError(what, classified));
    this.name = "KubeCallError";
    this.kind = classified.kind;
    this.status = classified.status;
    this.reason = classified.reason;
  }
  get retryable(): boolean {
    return this.kind === "transient";
  }
}

export interface RetryOptions {
  /** Tries in all (default 4). */
  attempts?: number;
  /** Before the first retry (default 250 ms); doubles each time up to `maxDelayMs` (default 4000). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  signal?: AbortSignal;
  onRetry?: (err: KubeCallError, delayMs: number) => void;
}

/**
 * Runs one API call; a transient failure is retried with capped, jittered backoff; any failure
 * comes out as a {@link KubeCallError} naming `what` was attempted.
 */
export async function callKube<T>(what: string, call: () => Promise<T>, options: RetryOptions): Promise<T> {
  const attempts = options.attempts ?? 4;
  const random = options.random ?? Math.random;
  for (let attempt = 0; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await call();
    } catch (err) {
      const failure = new KubeCallError(what, classifyKubeError(err));
      if (failure.kind !== "transient" || attempt + 1 >= attempts) throw failure;
      const ceiling = Math.min(options.maxDelayMs ?? 4000, (options.initialDelayMs ?? 250) * 2 ** attempt);
      // Full jitter: controllers retrying after one outage do not come back in lockstep.
      const delay = Math.round(ceiling * (0.5 + random() / 2));
      options.onRetry?.(failure, delay);
      await options.sleep(delay, options.signal);
    }
  }
}
