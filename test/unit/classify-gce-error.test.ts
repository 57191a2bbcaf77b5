import { describe, expect, it } from "vitest";
import { classifyGceError, GceOperationError, triesElsewhere } from "../../src/backends/gce/classify-gce-error.js";

/** What the REST clients throw: a GaxiosError whose message is GCE's JSON error body. */
function apiError(status: number, reason: string, message = "x", rpcStatus?: string) {
  return Object.assign(
    new Error(JSON.stringify({ error: { code: status, message, ...(rpcStatus ? { status: rpcStatus } : { errors: [{ reason, message }] }) } })),
    { code: status, status },
  );
}

describe("classifyGceError", () => {
  it.each([
    [
      "a stock-out in the zone operation",
      new GceOperationError("op", [{ code: "ZONE_RESOURCE_POOL_EXHAUSTED", message: "The zone does not have enough resources available" }], 503),
      "stock_out",
      "ZONE_RESOURCE_POOL_EXHAUSTED",
    ],
    [
      "a detailed stock-out",
      new GceOperationError("op", [{ code: "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", message: "currently unavailable" }]),
      "stock_out",
      "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    ],
    [
      "a quota in the zone operation",
      new GceOperationError("op", [{ code: "QUOTA_EXCEEDED", message: "Quota 'CPUS' exceeded." }], 403),
      "quota",
      "QUOTA_EXCEEDED",
    ],
    ["a quota refused by the insert itself", apiError(403, "quotaExceeded"), "quota", "quotaExceeded"],
    ["a rate limit", apiError(403, "rateLimitExceeded"), "transient", "rateLimitExceeded"],
    ["429", apiError(429, "rateLimitExceeded"), "transient", "rateLimitExceeded"],
    ["503", apiError(503, "backendError"), "transient", "backendError"],
    ["a dropped connection", Object.assign(new Error("request to http://x failed, reason: socket hang up"), { code: "ECONNRESET" }), "transient", "ECONNRESET"],
    ["404", apiError(404, "notFound"), "not_found", "notFound"],
    ["Secret Manager's 404", apiError(404, "", "Secret not found", "NOT_FOUND"), "not_found", "NOT_FOUND"],
    ["409 alreadyExists", apiError(409, "alreadyExists", "The resource already exists"), "already_exists", "alreadyExists"],
    ["a missing permission", apiError(403, "forbidden", "Required 'compute.instances.create' permission"), "fatal", "forbidden"],
    ["a bad request", apiError(400, "invalid", "Invalid value for field 'resource.machineType'"), "fatal", "invalid"],
    [
      "an operation that failed for good",
      new GceOperationError("op", [{ code: "RESOURCE_NOT_FOUND", message: "The resource 'image' was not found" }]),
      "fatal",
      "RESOURCE_NOT_FOUND",
    ],
    ["a gRPC UNAVAILABLE", Object.assign(new Error("unavailable"), { code: 14 }), "transient", "14"],
    ["a gRPC PERMISSION_DENIED", Object.assign(new Error("denied"), { code: 7 }), "fatal", "7"],
  ] as const)("%s is %s", (_what, err, kind, code) => {
    const c = classifyGceError(err);
    expect(c.kind).toBe(kind);
    expect(c.code).toBe(code);
  });

  it("sends only stock-outs and quotas to another zone", () => {
    expect(["stock_out", "quota"].every((k) => triesElsewhere(k as never))).toBe(true);
    expect(["transient", "fatal", "not_found", "already_exists"].some((k) => triesElsewhere(k as never))).toBe(false);
  });
});
