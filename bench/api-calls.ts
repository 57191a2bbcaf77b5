/**
 * api-calls: GitHub API calls for one whole 10-minute job, check updates included, by endpoint.
 * Time is scaled 30:1 (a minute is 2 s, the default 30 s status interval is 1 s), so the run takes
 * 20 s and makes the same calls a real 10-minute job makes.
 *   npm run bench:api-calls -- --minutes 10
 */
import { startHarness, FAKE_AGENT_CONFIG } from "../test/support/harness.js";
import { CONTROLLER_ENV_VARS } from "../src/config/env.js";
import { arg, report, type BenchRow } from "./lib.js";

const minutes = arg("minutes", 10);
/** Real seconds per benchmark second. */
const SCALE = 30;

export async function apiCallsBench(): Promise<BenchRow[]> {
  const interval = Number(CONTROLLER_ENV_VARS.find((v) => v.name === "STATUS_UPDATE_INTERVAL_SECONDS")!.default);
  // An agent that works for `minutes` (seconds here), saying so every "minute", then edits a file.
  const work = `for i in $(seq ${minutes}); do echo "working, minute $i"; sleep ${SCALE / 30}; done; echo done > WORK.md`;
  const config = FAKE_AGENT_CONFIG(`max_minutes: ${minutes + 5}\n`).replace(
    /command: .*\n/,
    `command: ["sh", "-c", ${JSON.stringify(work)}, "sh", "{prompt_file}"]\n`,
  );
  const h = await startHarness({
    repoConfigYaml: config,
    secondsPerMinute: 60 / SCALE,
    env: { STATUS_UPDATE_INTERVAL_SECONDS: String(interval / SCALE) },
  });
  try {
    await h.deliverLabel({ body: "work for a while" });
    await h.settle(100);
    const [job] = await h.controller.store.list();
    const byRoute = new Map<string, number>();
    for (const c of h.github.calls) byRoute.set(`${c.method} ${c.route}`, (byRoute.get(`${c.method} ${c.route}`) ?? 0) + 1);
    const breakdown = [...byRoute].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n}× ${r}`);
    console.log(`api-calls: job ${job?.state}, ${h.github.calls.length} calls:\n  ${breakdown.join("\n  ")}`);
    const total = h.github.calls.length;
    return [
      {
        bench: `api-calls: one ${minutes}-minute job`,
        figure: `${total} calls (job ${job?.state})`,
        reference: `${Math.floor(5000 / total)} jobs per installation-hour of 5,000`,
        // 16: the requester's permission is asked again when the job starts (architecture: "Permission is asked twice").
        goal: "≤ 16",
        met: total <= 16 && job?.state === "succeeded",
      },
    ];
  } finally {
    await h.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) report(await apiCallsBench());
