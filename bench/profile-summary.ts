/**
 * Where a process's CPU went, from a V8 CPU profile: every sample is charged to the first frame,
 * leaf upwards, that belongs to a known part (a package, a folder of ours), so time spent in
 * Node's internals or in a native builtin counts for the code that called it. JSON.parse and
 * JSON.stringify are the exception: they count as JSON whoever called them.
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [jobs]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** First match wins; tested against the frame's URL (file path). */
const PARTS: [string, RegExp][] = [
  ["Octokit: throttling and Bottleneck (plugin-retry makes one a request)", /node_modules\/(bottleneck|@octokit\/plugin-throttling)\//],
  ["Octokit: retry", /node_modules\/@octokit\/plugin-retry\//],
  ["Octokit: auth (auth-app, JWT)", /node_modules\/(@octokit\/auth-[^/]+|universal-github-app-jwt|toad-cache)\//],
  [
    "Octokit: request, endpoint, hooks",
    /node_modules\/(@octokit\/(request|endpoint|core|request-error|plugin-rest-endpoint-methods|plugin-paginate-rest|openapi-types)|before-after-hook|probot\/lib\/octokit|@probot\/octokit-plugin-config|universal-user-agent)\//,
  ],
  ["fetch (undici)", /(node:internal\/deps\/undici|node_modules\/undici\/)/],
  ["webhook ingress (Probot, @octokit/webhooks)", /node_modules\/(probot|@octokit\/webhooks[^/]*|express|body-parser|raw-body|pino-http|router)\//],
  ["logging (pino)", /node_modules\/(pino|pino-std-serializers|fast-redact|sonic-boom|quick-format-unescaped|@pinojs[^/]*)\//],
  ["redaction (src/redact)", /\/src\/redact\/|\/dist\/redact\//],
  ["store (Kysely, better-sqlite3, src/store)", /node_modules\/(kysely|better-sqlite3)\/|\/(src|dist)\/(store|logs|cost\/ledger)/],
  ["metrics (prom-client)", /node_modules\/prom-client\//],
  ["zod", /node_modules\/zod\//],
  ["scheduler", /\/(src|dist)\/scheduler\//],
  ["pipeline: intake, run, report, status", /\/(src|dist)\/(pipeline|status|jobs|handlers|github|app|controller|cost)\b/],
  ["HTTP server and sockets (node)", /^node:(internal\/)?(http|_http|net|stream|internal\/streams|internal\/http|internal\/stream_base|internal\/js_stream)/],
  ["timers and promises (node)", /^node:(internal\/)?(timers|internal\/process\/task_queues|internal\/async_hooks)/],
  ["crypto (node)", /^node:(internal\/)?crypto/],
];

export interface ProfileTable {
  rows: { part: string; ms: number }[];
  /** All sampled CPU time, idle excluded, in ms. */
  busyMs: number;
}

export function summariseProfile(file: string): ProfileTable {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const partOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = partOf.get(id);
    if (known) return known;
    const leaf = byId.get(id)!.callFrame;
    let part: string | undefined;
    if (leaf.functionName === "(garbage collector)") part = "garbage collection";
    else if (leaf.functionName === "(idle)") part = "(idle)";
    else if (leaf.functionName === "(program)") part = "V8 and native, unattributed";
    else if (leaf.url === "" && (leaf.functionName === "stringify" || leaf.functionName === "parse")) part = "JSON";
    for (let at: number | undefined = id; !part && at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)!.callFrame.url;
      part = PARTS.find(([, re]) => re.test(url))?.[0];
    }
    part ??= "other";
    partOf.set(id, part);
    return part;
  };
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const part = classify(id);
    totals.set(part, (totals.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  totals.delete("(idle)");
  const rows = [...totals].map(([part, ms]) => ({ part, ms })).sort((a, b) => b.ms - a.ms);
  return { rows, busyMs: rows.reduce((a, r) => a + r.ms, 0) };
}

/**
 * The profile's sample intervals are wall-clock time, which a loaded machine stretches; the shares
 * hold, so each part's ms a job is its share of `cpuMsPerJob` (measured from /proc) when given.
 */
export function printProfileTable(table: ProfileTable, jobs: number, out: NodeJS.WritableStream = process.stdout, cpuMsPerJob?: number): void {
  const perJob = cpuMsPerJob ?? table.busyMs / jobs;
  out.write(
    `\nwhere the controller's main thread's CPU went: ${perJob.toFixed(1)} ms a job over ${jobs} jobs (${(table.busyMs / 1000).toFixed(1)} s of samples)\n`,
  );
  out.write(`| part | ms a job | share |\n| --- | --- | --- |\n`);
  for (const r of table.rows) out.write(`| ${r.part} | ${((perJob * r.ms) / table.busyMs).toFixed(2)} | ${((100 * r.ms) / table.busyMs).toFixed(1)}% |\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printProfileTable(summariseProfile(process.argv[2]!), Number(process.argv[3] ?? 1));
}
