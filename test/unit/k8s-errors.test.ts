import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { KubeCallError, callKube, classifyKubeError } from "../../src/backends/k8s/classify-k8s-error.js";

function apiError(code: number, reason: string, message: string) {
  // As client-node throws them: the Status as JSON text, headers beside it.
  return new ApiException(code, "Unknown API Status Code!", JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code }), {
    authorization: "Bearer secret-header",
  });
}

describe("classifying Kubernetes API errors", () => {
  it("treats 404 as not found and 409 AlreadyExists as already there: answers for idempotent calls", () => {
    expect(classifyKubeError(apiError(404, "NotFound", 'jobs.batch "agent-work-x" not found'))).toEqual({
      kind: "not_found",
      status: 404,
      reason: "NotFound",
      message: 'jobs.batch "agent-work-x" not found',
    });
    expect(classifyKubeError(apiError(409, "AlreadyExists", 'jobs.batch "agent-work-x" already exists'))).toMatchObject({
      kind: "already_exists",
      status: 409,
    });
  });

  it("retries what may pass: 429, 5xx, 408, a write conflict, a dropped connection", () => {
    for (const [code, reason] of [
      [429, "TooManyRequests"],
      [500, "InternalError"],
      [503, "ServiceUnavailable"],
      [504, "Timeout"],
      [408, "Timeout"],
      [409, "Conflict"],
    ] as const) {
      expect(classifyKubeError(apiError(code, reason, "x")).kind, `${code}`).toBe("transient");
    }
    expect(classifyKubeError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6443"), { code: "ECONNREFUSED" }))).toMatchObject({
      kind: "transient",
      reason: "ECONNREFUSED",
    });
    expect(classifyKubeError(Object.assign(new Error("request to https://k/apis failed"), { cause: { code: "ECONNRESET" } }))).toMatchObject({
      kind: "transient",
      reason: "ECONNRESET",
    });
  });

  it("fails at once on other 4xx (bad input, no permission), with the API server's words and no headers", () => {
    const forbidden = classifyKubeError(
      apiError(403, "Forbidden", 'jobs.batch is forbidden: User "system:serviceaccount:agent-work:agent-work-controller" cannot create resource "jobs"'),
    );
    expect(forbidden).toMatchObject({ kind: "fatal", status: 403, reason: "Forbidden" });
    expect(classifyKubeError(apiError(422, "Invalid", 'Job.batch "x" is invalid'))).toMatchObject({ kind: "fatal", status: 422 });
    expect(classifyKubeError(apiError(401, "Unauthorized", "Unauthorized"))).toMatchObject({ kind: "fatal" });
    const err = new KubeCallError("create Job agent-work/agent-work-x", forbidden);
    expect(err.message).toBe(
      'create Job agent-work/agent-work-x: Forbidden (403): jobs.batch is forbidden: User "system:serviceaccount:agent-work:agent-work-controller" cannot create resource "jobs"; check the controller\'s credentials and its Role (k8s/rbac.yaml)',
    );
    expect(err.message).not.toContain("secret-header");
    expect(err.retryable).toBe(false);
  });

  it("reads a Status that is missing or not JSON", () => {
    expect(classifyKubeError(new ApiException(502, "Bad Gateway", "<html>bad gateway</html>", {}))).toEqual({
      kind: "transient",
      status: 502,
      reason: "HTTP502",
      message: "the API server answered 502",
    });
    expect(classifyKubeError("weird")).toMatchObject({ kind: "fatal" });
  });
});

describe("calling the API", () => {
  const noSleep = async () => {};

  it("retries a transient failure with growing delays, then succeeds", async () => {
    const delays: number[] = [];
    let calls = 0;
    const value = await callKube(
      "list Jobs",
      async () => {
        if (++calls < 3) throw apiError(503, "ServiceUnavailable", "etcd leader changed");
        return "ok";
      },
      { sleep: noSleep, random: () => 1, onRetry: (_, ms) => delays.push(ms) },
    );
    expect(value).toBe("ok");
    expect(calls).toBe(3);
    expect(delays).toEqual([250, 500]);
  });

  it("gives up after its attempts, and never retries a fatal error", async () => {
    let calls = 0;
    await expect(
      callKube(
        "list Jobs",
        async () => {
          calls += 1;
          throw apiError(429, "TooManyRequests", "slow down");
        },
        { sleep: noSleep, attempts: 3 },
      ),
    ).rejects.toMatchObject({ kind: "transient", status: 429, message: "list Jobs: TooManyRequests (429): slow down" });
    expect(calls).toBe(3);

    calls = 0;
    await expect(
      callKube(
        "create Job",
        async () => {
          calls += 1;
          throw apiError(403, "Forbidden", "no");
        },
        { sleep: noSleep },
      ),
    ).rejects.toBeInstanceOf(KubeCallError);
    expect(calls).toBe(1);
  });
});
