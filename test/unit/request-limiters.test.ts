import http from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { concurrencyLimit, perMinuteBudget, retryOnRateLimit } from "../../src/github/request-limiters.js";
import { createOctokitClass } from "../../src/github/octokit-class.js";
import { createNodeHttpFetch } from "../../src/github/node-http-fetch.js";

/** The Bottleneck @octokit/plugin-retry builds for every request, as it resolves it (not a dependency of ours). */
const require = createRequire(import.meta.url);
const Bottleneck = createRequire(require.resolve("@octokit/plugin-retry"))("bottleneck/light.js") as { prototype: { schedule: () => unknown } };

/** A call that stays open until released, counting how many are open at once. */
function gate() {
  let open = 0;
  let most = 0;
  const releases: (() => void)[] = [];
  const call = () =>
    new Promise<void>((resolve) => {
      open++;
      most = Math.max(most, open);
      releases.push(() => {
        open--;
        resolve();
      });
    });
  return { call, releases, most: () => most, open: () => open };
}

const flush = () => new Promise((r) => setImmediate(r));

describe("the limiters GitHub calls go through", () => {
  afterEach(() => vi.useRealTimers());

  it("a concurrency limit never lets more than its cap run, and runs the rest in order as slots free", async () => {
    const limit = concurrencyLimit(3).key("any");
    const g = gate();
    const order: number[] = [];
    const all = Array.from({ length: 8 }, (_, i) => limit.schedule({}, async () => (order.push(i), g.call())));
    await flush();
    expect(g.open()).toBe(3);
    while (g.releases.length > 0) {
      g.releases.shift()!();
      await flush();
    }
    await Promise.all(all);
    expect(g.most()).toBe(3);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("a retry (weight 0) is not held behind the cap, and a failing call frees its slot", async () => {
    const limit = concurrencyLimit(1).key();
    const g = gate();
    const first = limit.schedule({}, g.call);
    await flush();
    await expect(limit.schedule({ weight: 0 }, async () => "retried")).resolves.toBe("retried");
    g.releases.shift()!();
    await first;
    await expect(limit.schedule({}, async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await expect(limit.schedule({}, async () => "next")).resolves.toBe("next");
  });

  it("a per-minute budget starts that many at once and the rest only after the minute", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const budget = perMinuteBudget(3).key();
    const started: number[] = [];
    const all = Array.from({ length: 5 }, (_, i) => budget.schedule({}, () => void started.push(i)));
    await vi.advanceTimersByTimeAsync(59_000);
    expect(started).toEqual([0, 1, 2]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    await Promise.all(all);
  });

  it("the retry wrapper runs a failed call again after the wait its handler answers, and gives the failure back when the handler answers none", async () => {
    const waits: number[] = [];
    const retry = retryOnRateLimit(async (ms) => void waits.push(ms));
    const seen: { args: unknown[]; retryCount: number }[] = [];
    retry.on("failed", (error, info) => {
      seen.push(info);
      return (error as Error).message === "rate limited" && info.retryCount < 2 ? 1000 : undefined;
    });
    let calls = 0;
    const flaky = async (a: string, b: number) => {
      calls++;
      if (calls < 3) throw new Error("rate limited");
      return `${a}${b}`;
    };
    await expect(retry.schedule(flaky, "x", 1)).resolves.toBe("x1");
    expect(calls).toBe(3);
    expect(waits).toEqual([1000, 1000]);
    expect(seen).toEqual([
      { args: ["x", 1], retryCount: 0 },
      { args: ["x", 1], retryCount: 1 },
    ]);

    calls = 0;
    await expect(retry.schedule(async () => Promise.reject(new Error("not found")))).rejects.toThrow("not found");
    const always = async () => {
      calls++;
      throw new Error("rate limited");
    };
    await expect(retry.schedule(always)).rejects.toThrow("rate limited");
    expect(calls).toBe(3);
  });
});

describe("the controller's Octokit with these limiters", () => {
  it("still waits out a secondary rate limit and retries the call", async () => {
    let calls = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      calls++;
      if (calls === 1) {
        res
          .writeHead(403, { "content-type": "application/json", "retry-after": "1" })
          .end(JSON.stringify({ message: "You have exceeded a secondary rate limit" }));
        return;
      }
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ id: 1 }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const fetch = createNodeHttpFetch();
    try {
      const warnings: string[] = [];
      const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
      const Octokit = createOctokitClass({ log, onApiCall: () => undefined, fetch, overrides: { retry: { enabled: false } } });
      const octokit = new Octokit({ auth: { token: "ghs_test" }, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
      const { status } = await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
        owner: "o",
        repo: "r",
        issue_number: 1,
        body: "hi",
      });
      expect(status).toBe(201);
      expect(calls).toBe(2);
      expect(warnings).toContain("GitHub secondary rate limit hit");
    } finally {
      fetch.close();
      server.closeAllConnections();
      server.close();
    }
  });

  it("gives up after two retries, and each client retries only its own calls", async () => {
    let calls = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      calls++;
      res
        .writeHead(403, { "content-type": "application/json", "retry-after": "0" })
        .end(JSON.stringify({ message: "You have exceeded a secondary rate limit" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const fetch = createNodeHttpFetch();
    try {
      const warnings: { again: boolean }[] = [];
      const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
      const Octokit = createOctokitClass({
        log,
        onApiCall: () => undefined,
        fetch,
        overrides: { retry: { enabled: false }, throttle: { fallbackSecondaryRateRetryAfter: 0 } },
      });
      const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const other = new Octokit({ auth: { token: "ghs_other" }, baseUrl });
      const octokit = new Octokit({ auth: { token: "ghs_test" }, baseUrl });
      // The other client has made a call too, so its own retry handler is in place.
      await expect(other.request("GET /repos/{owner}/{repo}", { owner: "o", repo: "r" })).rejects.toMatchObject({ status: 403 });
      calls = 0;
      warnings.length = 0;
      await expect(
        octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { owner: "o", repo: "r", issue_number: 1, body: "hi" }),
      ).rejects.toMatchObject({ status: 403 });
      expect(calls).toBe(3);
      // One warning per failure, from this client's handler alone: two that retry, then the one that gives up.
      expect(warnings.map((w) => w.again)).toEqual([true, true, false]);
    } finally {
      fetch.close();
      server.closeAllConnections();
      server.close();
    }
  });
  it("retries a call that failed on GitHub's side as plugin-retry did, without building a Bottleneck for each request, but never a POST that may have made a duplicate", async () => {
    const statuses = [502, 500, 200, 502, 502, 500, 201, 404];
    let calls = 0;
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      seen.push(`${req.method} ${req.url}`);
      const status = statuses[calls++] ?? 201;
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(status < 300 ? { id: 1 } : { message: "failed" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const fetch = createNodeHttpFetch();
    const bottleneckSchedules = vi.spyOn(Bottleneck.prototype, "schedule");
    try {
      const log = pino({ level: "silent" });
      const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const Octokit = createOctokitClass({ log, onApiCall: () => undefined, fetch, overrides: { retry: { retryAfterBaseValue: 1 } } });
      const octokit = new Octokit({ auth: { token: "ghs_test" }, baseUrl });
      // An edit: 502, then 500, then the answer.
      expect(
        (await octokit.request("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", { owner: "o", repo: "r", comment_id: 9, body: "hi" })).status,
      ).toBe(200);
      expect(calls).toBe(3);
      // A new comment: the 502 may have come after GitHub made it, so it is not sent again.
      await expect(
        octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { owner: "o", repo: "r", issue_number: 1, body: "hi" }),
      ).rejects.toMatchObject({ status: 502 });
      expect(calls).toBe(4);
      // A reaction is one per person and content: sent again after 502, then 500.
      expect(
        (await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/reactions", { owner: "o", repo: "r", issue_number: 1, content: "eyes" }))
          .status,
      ).toBe(201);
      expect(calls).toBe(7);
      expect(seen.slice(3)).toEqual([
        "POST /repos/o/r/issues/1/comments",
        "POST /repos/o/r/issues/1/reactions",
        "POST /repos/o/r/issues/1/reactions",
        "POST /repos/o/r/issues/1/reactions",
      ]);
      // A 404 is not worth another try.
      await expect(octokit.request("GET /repos/{owner}/{repo}", { owner: "o", repo: "r" })).rejects.toMatchObject({ status: 404 });
      expect(calls).toBe(8);
      expect(bottleneckSchedules).not.toHaveBeenCalled();
      // Turned off, as the tests' controllers do: the first failure is the answer.
      statuses.push(503);
      const noRetries = new (createOctokitClass({ log, onApiCall: () => undefined, fetch, overrides: { retry: { enabled: false } } }))({
        auth: { token: "ghs_test" },
        baseUrl,
      });
      calls = 8;
      await expect(noRetries.request("GET /repos/{owner}/{repo}", { owner: "o", repo: "r" })).rejects.toMatchObject({ status: 503 });
      expect(calls).toBe(9);
    } finally {
      bottleneckSchedules.mockRestore();
      fetch.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
