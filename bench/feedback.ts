/**
 * feedback: delivery → first visible answer on GitHub (the 👀, the queued check run, the status
 * comment), with a fake GitHub that takes 50 ms to answer every call and 20 labels at once.
 *   npm run bench:feedback -- --labels 20 --latency 50
 */
import { startHarness } from "../test/support/harness.js";
import { arg, ms, percentile, report, type BenchRow } from "./lib.js";

const labels = arg("labels", 20);
const latency = arg("latency", 50);

export async function feedbackBench(): Promise<BenchRow[]> {
  const h = await startHarness({ autoSchedule: true, latencyMs: latency, env: { LOG_LEVEL: "info" } });
  try {
    const sent = new Map<number, number>();
    const firstAnswer = new Map<number, number>();
    const commented = new Map<number, number>();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: labels }, async (_, i) => {
        sent.set(i + 1, performance.now());
        await h.deliverLabel({ number: i + 1, body: "FAKE_AGENT:none" });
      }),
    );
    // Poll the fake's record: when did each issue get its reaction and its status comment?
    while (commented.size < labels && performance.now() - started < 60_000) {
      for (const c of h.github.calls) {
        const n = Number(/\/issues\/(\d+)\//.exec(c.path)?.[1]);
        if (!n || !sent.has(n)) continue;
        if (c.method === "POST" && c.route.endsWith("/reactions") && !firstAnswer.has(n)) firstAnswer.set(n, performance.now());
        if (c.method === "POST" && c.route.endsWith("/comments") && !commented.has(n)) commented.set(n, performance.now());
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const toFirst = [...firstAnswer].map(([n, t]) => t - sent.get(n)!);
    const toComment = [...commented].map(([n, t]) => t - sent.get(n)!);
    const p95 = percentile(toFirst, 95);
    return [
      {
        bench: `feedback: ${labels} labels, GitHub +${latency} ms/call`,
        figure: `p95 ${ms(p95)} to the 👀`,
        reference: `p95 ${ms(percentile(toComment, 95))} to the status comment (${toComment.length}/${labels})`,
        goal: "p95 ≤ 1 s",
        met: p95 <= 1000 && toFirst.length === labels,
      },
    ];
  } finally {
    await h.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) report(await feedbackBench());
