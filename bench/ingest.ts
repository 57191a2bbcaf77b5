/**
 * ingest: signed `issues.labeled` deliveries (a new issue and a fresh delivery id each) at a fixed
 * rate and then flat out, from autocannon in its own process, against bare Probot with a no-op
 * handler and against the controller as users run it (scheduler, intake and reaper on, workers
 * that cost it nothing, GitHub a fake answering from memory), each in its own process, in one
 * run. Every delivery must be answered and become exactly one job, and every job must reach its
 * final report; the controller's CPU time from the first delivery to the last report, divided by
 * the jobs, stands next to the latencies. `--compare <checkout>` also drives that checkout's build
 * (built there) the same way and sets its figures beside this one's.
 *   npm run bench:ingest -- --rate 100 --seconds 10 --flat 5 --connections 4 [--compare /work/wt/before]
 */
import { startFakeGitHubServer } from "./fake-github-server.js";
import { appCredentials } from "./support.js";
import { cpuMs, load, settle, startBareProbot, startController, succeeded, total, type LoadResult, type Target } from "./bench-processes.js";
import { arg, ms, percentile, report, textArg, type BenchRow } from "./lib.js";

const rate = arg("rate", 100);
// 10 s at 100/s: a p99 over 1,000 answers (the 10th slowest), not 300 (the 3rd), which moved by
// half between runs on the same build.
const seconds = arg("seconds", 10);
const flat = arg("flat", 3);
const connections = arg("connections", 4);
const compare = textArg("compare");

interface Side {
  warm: LoadResult;
  paced: LoadResult;
  flat: LoadResult;
  cpuMs: number;
}

/** A short warm-up (JIT, connections), then the paced phase, then flat out. */
async function drive(target: Target, secret: string): Promise<Side> {
  const warm = await load({ url: target.url, secret, firstIssue: 1, connections, amount: 200 });
  const cpu0 = cpuMs(target.pid);
  const paced = await load({ url: target.url, secret, firstIssue: 100_000, connections, rate, seconds });
  const flatOut = await load({ url: target.url, secret, firstIssue: 200_000, connections, seconds: flat });
  return { warm, paced, flat: flatOut, cpuMs: cpuMs(target.pid) - cpu0 };
}

const perSecond = (r: LoadResult) => r.answered / r.seconds;
const lost = (r: LoadResult) => r.sent - r.answered;

interface ControllerSide extends Side {
  jobs: number;
  finished: number;
  jobCpuMs: number;
}

/** The controller (this tree's build, or `build`'s) driven like bare Probot, then let finish every job. */
async function controllerSide(creds: ReturnType<typeof appCredentials>, build?: string): Promise<ControllerSide> {
  const github = await startFakeGitHubServer();
  const controller = await startController({ creds, githubHost: github.host, worker: "instant", build });
  try {
    const cpu0 = cpuMs(controller.pid);
    const side = await drive(controller, creds.secret);
    // The warm-up's jobs are counted too: they ran in the measured window as well.
    const { figures } = await settle(controller, 10 * 60_000);
    const jobs = total(figures.states);
    return { ...side, jobs, finished: succeeded(figures.states), jobCpuMs: (cpuMs(controller.pid) - cpu0) / jobs };
  } finally {
    await controller.stop();
    await github.close();
  }
}

/** --compare: the other build's figures beside this one's; the CPU ratio counts only when every job of both ended with its pull request. */
function comparisonRow(checkout: string, before: ControllerSide, after: ControllerSide): BenchRow {
  return {
    bench: `ingest: controller CPU a job, this build vs ${checkout}`,
    figure: `${after.jobCpuMs.toFixed(1)} vs ${before.jobCpuMs.toFixed(1)} ms (×${(after.jobCpuMs / before.jobCpuMs).toFixed(2)})`,
    reference: `before: p99 at ${rate}/s ${ms(percentile(before.paced.latencies, 99))}, flat out ${perSecond(before.flat).toFixed(0)}/s, ${before.jobs} jobs, ${before.finished} succeeded`,
    goal: "≤ ½ of before",
    met: before.finished === before.jobs && after.finished === after.jobs && after.jobCpuMs <= before.jobCpuMs / 2,
  };
}

export async function ingestBench(): Promise<BenchRow[]> {
  const creds = appCredentials();
  const bareTarget = await startBareProbot({ creds });
  let b: Side;
  try {
    b = await drive(bareTarget, creds.secret);
  } finally {
    await bareTarget.stop();
  }

  const before = compare ? await controllerSide(creds, compare) : undefined;
  const o = await controllerSide(creds);

  const p99Bare = percentile(b.paced.latencies, 99);
  const p99Ours = percentile(o.paced.latencies, 99);
  const delivered = o.warm.sent + o.paced.sent + o.flat.sent;
  const answered = o.warm.answered + o.paced.answered + o.flat.answered;
  const rows: BenchRow[] = [
    {
      bench: `ingest p99 at ${rate}/s, whole controller`,
      figure: ms(p99Ours),
      reference: `bare Probot ${ms(p99Bare)} (×${(p99Ours / p99Bare).toFixed(2)}); p50 ${ms(percentile(o.paced.latencies, 50))} vs ${ms(percentile(b.paced.latencies, 50))}`,
      goal: "≤ 1.5× bare",
      met: p99Ours <= 1.5 * p99Bare,
    },
    {
      bench: `ingest flat out (${connections} connections)`,
      figure: `${perSecond(o.flat).toFixed(0)}/s`,
      reference: `bare Probot ${perSecond(b.flat).toFixed(0)}/s (×${(perSecond(o.flat) / perSecond(b.flat)).toFixed(2)})`,
      goal: "≥ 0.5× bare",
      met: perSecond(o.flat) >= 0.5 * perSecond(b.flat),
    },
    {
      bench: "ingest: deliveries → jobs → final reports",
      figure: `${answered}/${delivered} answered → ${o.jobs} jobs, ${o.finished} succeeded`,
      reference: `controller CPU ${o.jobCpuMs.toFixed(1)} ms a job (delivery → final report); bare: ${b.paced.answered + b.flat.answered} answered, ${lost(b.paced) + lost(b.flat)} not, ${(b.cpuMs / (b.paced.answered + b.flat.answered)).toFixed(2)} ms CPU a delivery`,
      goal: "each delivery exactly one job",
      // A phase that ends on time leaves up to one delivery per connection in flight: recorded
      // (a job) but not counted as answered by the client.
      met: answered === delivered && o.jobs >= answered && o.jobs - answered <= 3 * connections && o.finished === o.jobs,
    },
  ];
  return compare && before ? [...rows, comparisonRow(compare, before, o)] : rows;
}

if (import.meta.url === `file://${process.argv[1]}`) report(await ingestBench());
