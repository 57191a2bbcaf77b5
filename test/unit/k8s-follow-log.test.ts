import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { followPodLog, timestampNanos } from "../../src/backends/k8s/follow-pod-log.js";
import type { KubeApi, PodLogRequest } from "../../src/backends/k8s/kube-api.js";

interface Line {
  nanos: bigint;
  text: string;
}

function rfc3339Nano(nanos: bigint): string {
  const seconds = new Date(Number(nanos / 1_000_000_000n) * 1000).toISOString().replace(/\.\d{3}Z$/, "");
  const frac = String(nanos % 1_000_000_000n)
    .padStart(9, "0")
    .replace(/0+$/, "");
  return `${seconds}${frac ? `.${frac}` : ""}Z`;
}

/**
 * A log endpoint over `lines` that, connection after connection, follows `plan`: cut the
 * response after so many bytes (a broken connection) or end it early (the server's timeout).
 * The container runs until the plan is used up; the last connection serves everything.
 */
function flakyLogApi(lines: Line[], plan: { cutAfterBytes: number; how: "break" | "end" }[], chunkSize: number) {
  const requests: PodLogRequest[] = [];
  let call = 0;
  const api: Pick<KubeApi, "streamPodLog"> = {
    async streamPodLog(request, onChunk) {
      requests.push(request);
      const step = plan[call++];
      const since = request.sinceTime ? BigInt(Date.parse(request.sinceTime)) * 1_000_000n : -1n;
      const body = Buffer.from(
        lines
          .filter((l) => l.nanos >= since)
          .map((l) => `${rfc3339Nano(l.nanos)} ${l.text}\n`)
          .join(""),
      );
      const limit = step ? Math.min(step.cutAfterBytes, body.length) : body.length;
      for (let i = 0; i < limit; i += chunkSize) onChunk(body.subarray(i, Math.min(limit, i + chunkSize)));
      if (step?.how === "break") throw Object.assign(new Error("the pod log stream broke off"), { code: "ECONNRESET" });
    },
  };
  return { api: api as KubeApi, requests };
}

const noSleep = async () => {};

describe("timestamps", () => {
  it("reads RFC3339Nano with any number of fraction digits, and nothing else", () => {
    expect(timestampNanos("2024-05-01T10:00:00Z")).toBe(1714557600n * 1_000_000_000n);
    expect(timestampNanos("2024-05-01T10:00:00.5Z")).toBe(1714557600n * 1_000_000_000n + 500_000_000n);
    expect(timestampNanos("2024-05-01T10:00:00.000000001Z")).toBe(1714557600n * 1_000_000_000n + 1n);
    expect(timestampNanos("2024-05-01T12:00:00.25+02:00")).toBe(1714557600n * 1_000_000_000n + 250_000_000n);
    expect(timestampNanos("hello")).toBeNull();
  });
});

describe("following a pod's log", () => {
  it("delivers every line exactly once, in order, however often the stream breaks or ends early", async () => {
    const lineArb = fc.record({
      gapNs: fc.constantFrom(0n, 1n, 999n, 1_000_000n, 400_000_000n, 1_000_000_000n, 3_000_000_000n),
      text: fc.string({ maxLength: 12 }).filter((t) => !t.includes("\n")),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { maxLength: 40 }),
        fc.array(fc.record({ cutAfterBytes: fc.nat({ max: 1500 }), how: fc.constantFrom("break" as const, "end" as const) }), { maxLength: 6 }),
        fc.integer({ min: 1, max: 64 }),
        async (specs, plan, chunkSize) => {
          let nanos = 1_714_557_600n * 1_000_000_000n;
          const lines = specs.map((s) => ({ nanos: (nanos += s.gapNs), text: s.text }));
          const { api } = flakyLogApi(lines, plan, chunkSize);
          let calls = 0;
          const countingApi: KubeApi = {
            ...api,
            streamPodLog: (r, onChunk, signal) => {
              calls += 1;
              return api.streamPodLog(r, onChunk, signal);
            },
          };
          const delivered: string[] = [];
          const result = await followPodLog(countingApi, {
            namespace: "ns",
            pod: "p",
            container: "worker",
            onLine: (l) => delivered.push(l),
            // Running while planned interruptions remain.
            containerRunning: async () => calls <= plan.length,
            signal: new AbortController().signal,
            sleep: noSleep,
            maxReconnects: plan.length + 2,
          });
          expect(result.complete).toBe(true);
          expect(delivered).toEqual(lines.map((l) => l.text));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("asks again from the last line's second, with timestamps, following", async () => {
    const base = 1_714_557_600n * 1_000_000_000n;
    const lines = [0n, 1n, 2_500_000_000n, 2_600_000_000n].map((d, i) => ({ nanos: base + d, text: `line ${i}` }));
    const { api, requests } = flakyLogApi(lines, [{ cutAfterBytes: 3 * 40, how: "break" }], 7);
    const delivered: string[] = [];
    let n = 0;
    await followPodLog(api, {
      namespace: "ns",
      pod: "p",
      container: "worker",
      onLine: (l) => delivered.push(l),
      containerRunning: async () => ++n < 1,
      signal: new AbortController().signal,
      sleep: noSleep,
    });
    expect(delivered).toEqual(["line 0", "line 1", "line 2", "line 3"]);
    expect(requests).toEqual([
      { namespace: "ns", pod: "p", container: "worker", follow: true, timestamps: true },
      { namespace: "ns", pod: "p", container: "worker", follow: true, timestamps: true, sinceTime: "2024-05-01T10:00:02Z" },
    ]);
  });

  it("gives up after its reconnects, and stops quietly when told to", async () => {
    const api = { streamPodLog: async () => Promise.reject(Object.assign(new Error("reset"), { code: "ECONNRESET" })) } as unknown as KubeApi;
    const base = { namespace: "ns", pod: "p", container: "worker", onLine: () => {}, containerRunning: async () => true, sleep: noSleep };
    expect(await followPodLog(api, { ...base, signal: new AbortController().signal, maxReconnects: 3 })).toMatchObject({
      complete: false,
      reconnects: 3,
      lastError: "ECONNRESET: reset",
    });
    const ac = new AbortController();
    ac.abort();
    expect(await followPodLog(api, { ...base, signal: ac.signal })).toMatchObject({ complete: false, reconnects: 0 });
  });

  it("stops when the pod is gone (404)", async () => {
    const gone = Object.assign(new Error("x"), {
      code: 404,
      body: JSON.stringify({ kind: "Status", reason: "NotFound", message: 'pods "p" not found', code: 404 }),
    });
    const api = { streamPodLog: async () => Promise.reject(gone) } as unknown as KubeApi;
    expect(
      await followPodLog(api, {
        namespace: "ns",
        pod: "p",
        container: "worker",
        onLine: () => {},
        containerRunning: async () => true,
        signal: new AbortController().signal,
        sleep: noSleep,
      }),
    ).toEqual({ complete: false, reconnects: 0, lastError: 'NotFound: pods "p" not found' });
  });
});
