/**
 * feedback: delivery → each first visible answer on GitHub (the 👀, the queued check run, the
 * status comment), for 20 labels at once, with GitHub answering every call 50 ms late. The
 * controller runs as users run it, in its own process (see bench-processes.ts); an answer counts
 * from the moment GitHub answered the call that made it.
 *   npm run bench:feedback -- --labels 20 --latency 50
 */
import { startFakeGitHubServer } from "./fake-github-server.js";
import { appCredentials } from "./support.js";
import { settle, startController } from "./bench-processes.js";
import { deliver, labeledPayload } from "../test/support/payloads.js";
import { arg, ms, percentile, report, type BenchRow } from "./lib.js";

const labels = arg("labels", 20);
const latency = arg("latency", 50);

export async function feedbackBench(): Promise<BenchRow[]> {
  const github = await startFakeGitHubServer({ latencyMs: latency });
  const creds = appCredentials();
  const controller = await startController({ creds, githubHost: github.host, worker: "instant" });
  try {
    const sent = new Map<number, number>();
    await Promise.all(
      Array.from({ length: labels }, async (_, i) => {
        const number = i + 1;
        sent.set(number, performance.timeOrigin + performance.now());
        const { status } = await deliver(controller.url, creds.secret, "issues", labeledPayload({ number, cloneUrl: "https://github.com/o/r.git" }));
        if (status !== 200) throw new Error(`delivery for issue ${number} answered ${status}`);
      }),
    );
    await settle(controller, 120_000);
    const after = (m: Map<number, number>) => [...m].filter(([n]) => sent.has(n)).map(([n, at]) => at - sent.get(n)!);
    const eyes = after(github.first.reaction);
    const checks = after(github.first.checkRun);
    const comments = after(github.first.comment);
    const p95 = (v: number[]) => percentile(v, 95);
    return [
      {
        bench: `feedback: ${labels} labels, GitHub +${latency} ms/call`,
        figure: `p95 ${ms(p95(comments))} to the status comment`,
        reference: `p95 ${ms(p95(eyes))} to the 👀, ${ms(p95(checks))} to the queued check run; ${comments.length}/${labels} commented`,
        goal: "each p95 ≤ 1 s",
        met: [eyes, checks, comments].every((v) => v.length === labels && p95(v) <= 1000),
      },
    ];
  } finally {
    await controller.stop();
    await github.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) report(await feedbackBench());
