/**
 * The one place that decides what a Google Cloud error means for the gce backend. Everything else
 * branches on `kind`, never on status codes or message text.
 *
 * - `transient`: the same request may succeed later (429, 5xx, rate limits, a dropped connection);
 *   retried with backoff, reusing the insert's requestId so a retry cannot make a second VM.
 * - `stock_out` / `quota`: this zone (or this provisioning model) cannot take the VM now; trying
 *   the same request again is pointless, another zone or on-demand may work.
 * - `not_found` / `already_exists`: answers, not failures, for idempotent delete and create.
 * - `fatal`: bad input or missing permission; retrying cannot help and the message says why.
 */

export type GceErrorKind = "transient" | "stock_out" | "quota" | "not_found" | "already_exists" | "fatal";

export interface ClassifiedGceError {
  kind: GceErrorKind;
  /** GCE's own code when there is one (ZONE_RESOURCE_POOL_EXHAUSTED, quotaExceeded, ECONNRESET, 503...). */
  code: string;
  /** What happened, in GCE's words, for logs and the job's failure message. */
  message: string;
  httpStatus?: number;
}

/**
 * A zone operation that finished with `error` set. The insert call itself succeeded, so this is
 * the only way stock-outs reach us: GCE accepts the request and then fails the operation.
 * A class because the caller branches on it (through {@link classifyGceError}).
 */
export class GceOperationError extends Error {
  constructor(
    readonly operation: string,
    readonly errors: { code: string; message: string }[],
    readonly httpStatus?: number,
  ) {
    super(errors.map((e) => `${e.code}: ${e.message}`).join("; ") || `operation ${operation} failed`);
    this.name = "GceOperationError";
  }
}

const STOCK_OUT_CODES = new Set(["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_POOL_EXHAUSTED"]);
const QUOTA_CODES = new Set(["QUOTA_EXCEEDED", "quotaExceeded", "REGIONAL_QUOTA_EXCEEDED"]);
const RATE_LIMIT_REASONS = new Set(["rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"]);
/** Operation error codes that say "try again" rather than "this cannot work". */
const TRANSIENT_OPERATION_CODES = new Set(["INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "RESOURCE_NOT_READY", "OPERATION_CANCELED_BY_USER_TIMEOUT"]);
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
/** google.rpc.Code numbers, for errors that carry one instead of an HTTP status. */
const RPC = {
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
const STOCK_OUT_TEXT = /does not have enough resources available|ZONE_RESOURCE_POOL_EXHAUSTED|currently unavailable in the .* zone/i;

interface ApiErrorBody {
  code?: number;
  message?: string;
  status?: string;
  errors?: { reason?: string; message?: string }[];
}

/** The JSON error body GCE and Secret Manager send, which the REST clients put in `message`. */
function apiErrorBody(err: { message?: unknown; response?: { data?: unknown } }): ApiErrorBody | undefined {
  const fromData = (err.response?.data as { error?: ApiErrorBody } | undefined)?.error;
  if (fromData && typeof fromData === "object") return fromData;
  if (typeof err.message !== "string" || !err.message.trimStart().startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(err.message) as { error?: ApiErrorBody };
    return parsed.error && typeof parsed.error === "object" ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

function classifyOperation(err: GceOperationError): ClassifiedGceError {
  const codes = err.errors.map((e) => e.code);
  const message = err.message;
  const base = { message, ...(err.httpStatus ? { httpStatus: err.httpStatus } : {}) };
  const stockOut = codes.find((c) => STOCK_OUT_CODES.has(c));
  if (stockOut || STOCK_OUT_TEXT.test(message)) return { kind: "stock_out", code: stockOut ?? "ZONE_RESOURCE_POOL_EXHAUSTED", ...base };
  const quota = codes.find((c) => QUOTA_CODES.has(c));
  if (quota) return { kind: "quota", code: quota, ...base };
  if (codes.includes("RESOURCE_ALREADY_EXISTS")) return { kind: "already_exists", code: "RESOURCE_ALREADY_EXISTS", ...base };
  const transient = codes.find((c) => TRANSIENT_OPERATION_CODES.has(c));
  if (transient) return { kind: "transient", code: transient, ...base };
  return { kind: "fatal", code: codes[0] ?? "OPERATION_FAILED", ...base };
}

export function classifyGceError(err: unknown): ClassifiedGceError {
  if (err instanceof GceOperationError) return classifyOperation(err);
  if (typeof err !== "object" || err === null) return { kind: "fatal", code: "UNKNOWN", message: String(err) };
  const e = err as { code?: unknown; status?: unknown; message?: unknown; name?: unknown; response?: { data?: unknown }; cause?: unknown };
  if (e.name === "AbortError") return { kind: "fatal", code: "ABORTED", message: String(e.message ?? "aborted") };

  const body = apiErrorBody(e);
  const httpStatus = typeof e.code === "number" && e.code >= 100 ? e.code : typeof e.status === "number" && e.status >= 100 ? e.status : body?.code;
  const reasons = (body?.errors ?? []).map((x) => x.reason ?? "").filter(Boolean);
  const message = body?.message ?? (typeof e.message === "string" ? e.message : String(err));
  const code =
    reasons[0] ??
    body?.status ??
    (typeof e.code === "string" || typeof e.code === "number" ? String(e.code) : httpStatus !== undefined ? String(httpStatus) : "UNKNOWN");
  const withStatus = (kind: GceErrorKind, c = code): ClassifiedGceError => ({ kind, code: c, message, ...(httpStatus !== undefined ? { httpStatus } : {}) });

  // Network-level failures: no answer at all, so the request may or may not have taken effect.
  if (typeof e.code === "string" && TRANSIENT_ERRNO.has(e.code)) return withStatus("transient");
  if (/socket hang up|ECONNRESET|network timeout/i.test(message) && httpStatus === undefined) return withStatus("transient", "ECONNRESET");

  if (httpStatus !== undefined) {
    if (STOCK_OUT_TEXT.test(message) || reasons.some((r) => STOCK_OUT_CODES.has(r)))
      return withStatus("stock_out", reasons.find((r) => STOCK_OUT_CODES.has(r)) ?? "ZONE_RESOURCE_POOL_EXHAUSTED");
    if (reasons.some((r) => QUOTA_CODES.has(r))) return withStatus("quota");
    if (reasons.some((r) => RATE_LIMIT_REASONS.has(r))) return withStatus("transient");
    if (httpStatus === 404) return withStatus("not_found");
    if (httpStatus === 409 && (reasons.includes("alreadyExists") || body?.status === "ALREADY_EXISTS" || /already exists/i.test(message)))
      return withStatus("already_exists");
    if (httpStatus === 429 || httpStatus === 408 || httpStatus >= 500) return withStatus("transient");
    return withStatus("fatal");
  }

  // gRPC-style codes (a client not in REST fallback mode).
  if (typeof e.code === "number") {
    switch (e.code) {
      case RPC.NOT_FOUND:
        return withStatus("not_found");
      case RPC.ALREADY_EXISTS:
        return withStatus("already_exists");
      case RPC.RESOURCE_EXHAUSTED:
        return /quota/i.test(message) && !/rate/i.test(message) ? withStatus("quota") : withStatus("transient");
      case RPC.DEADLINE_EXCEEDED:
      case RPC.ABORTED:
      case RPC.INTERNAL:
      case RPC.UNAVAILABLE:
        return withStatus("transient");
      default:
        return withStatus("fatal");
    }
  }
  return withStatus("fatal");
}

/** Whether a placement failure should move on to the next zone or provisioning model. */
export function triesElsewhere(kind: GceErrorKind): boolean {
  return kind === "stock_out" || kind === "quota";
}
