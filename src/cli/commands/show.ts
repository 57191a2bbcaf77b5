import { parseArgs } from "node:util";
import type { CliContext } from "../cli-context.js";
import { formatTime, UsageError } from "../format.js";

/** `agent-work show <id> [--json]`: the job and its event log. */
export async function showCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { json: { type: "boolean" } }, strict: true, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError("show needs exactly one job id");
  const id = positionals[0]!;
  const job = await ctx.store.get(id);
  if (!job) {
    ctx.io.err(`no job ${id}`);
    return 1;
  }
  const events = await ctx.store.events(id);
  if (values.json) {
    ctx.io.out(JSON.stringify({ job, events }, null, 2));
    return 0;
  }
  const out = ctx.io.out;
  out(`job ${job.id}: ${job.state}`);
  out(`  issue     ${job.owner}/${job.repo}#${job.number} (${job.kind}, ${job.trigger} by @${job.requester})`);
  out(`  title     ${job.title}`);
  out(`  backend   ${job.backend}${job.worker ? `, worker ${job.worker.id}` : ""}`);
  out(`  created   ${formatTime(job.createdAt)}   started ${formatTime(job.startedAt)}   finished ${formatTime(job.finishedAt)}`);
  if (job.deadlineAt !== null) out(`  deadline  ${formatTime(job.deadlineAt)}`);
  if (job.branch) out(`  branch    ${job.branch}`);
  if (job.prUrl) out(`  pull      ${job.prUrl}`);
  if (job.computeSeconds !== null) out(`  compute   ${job.computeSeconds.toFixed(1)} s${job.costUsd !== null ? `, $${job.costUsd.toFixed(4)}` : ""}`);
  if (job.message) out(`  message   ${job.message}`);
  out("steps:");
  for (const s of job.steps) out(`  ${s.name.padEnd(13)} ${s.status.padEnd(8)} ${s.detail ?? ""}`.trimEnd());
  out("events:");
  for (const e of events) out(`  ${formatTime(e.at)}  ${e.kind.padEnd(8)} ${e.data === null ? "" : JSON.stringify(e.data)}`.trimEnd());
  return 0;
}
