import { parseArgs } from "node:util";
import { JOB_STATES, type JobState } from "../../jobs/state.js";
import type { CliContext } from "../cli-context.js";
import { formatTable, formatTime, UsageError } from "../format.js";

/** `agent-work jobs [--state S] [--repo owner/name] [--limit N] [--json]`: newest first. */
export async function jobsCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { state: { type: "string" }, repo: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } },
    strict: true,
    allowPositionals: false,
  });
  if (values.state !== undefined && !(JOB_STATES as readonly string[]).includes(values.state)) {
    throw new UsageError(`--state ${values.state} is not a job state; one of ${JOB_STATES.join(", ")}`);
  }
  if (values.repo !== undefined && !/^[^/\s]+\/[^/\s]+$/.test(values.repo)) throw new UsageError(`--repo ${values.repo}: expected owner/name`);
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new UsageError(`--limit ${values.limit}: expected a whole number of at least 1`);

  const repo = values.repo?.toLowerCase();
  const all = await ctx.store.list({ ...(values.state ? { state: values.state as JobState } : {}), limit: repo ? 100_000 : limit });
  const jobs = (repo ? all.filter((j) => `${j.owner}/${j.repo}`.toLowerCase() === repo) : all).slice(0, limit);
  if (values.json) {
    ctx.io.out(JSON.stringify(jobs, null, 2));
    return 0;
  }
  if (jobs.length === 0) {
    ctx.io.out("no jobs");
    return 0;
  }
  const rows = jobs.map((j) => [j.id, j.state, `${j.owner}/${j.repo}#${j.number}`, j.backend, formatTime(j.createdAt), j.message ?? ""]);
  for (const line of formatTable(["ID", "STATE", "ISSUE", "BACKEND", "CREATED (UTC)", "MESSAGE"], rows)) ctx.io.out(line);
  return 0;
}
