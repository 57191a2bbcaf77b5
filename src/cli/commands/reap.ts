import { parseArgs } from "node:util";
import { reap, type ReapAction } from "../../reaper/reap.js";
import type { CliContext } from "../cli-context.js";

const VERBS: Record<ReapAction["kind"], [string, string]> = {
  "mark-orphan": ["would mark orphan", "marked orphan"],
  "unmark-orphan": ["would unmark", "unmarked"],
  "destroy-orphan": ["would destroy orphan", "destroyed orphan"],
  "mark-vanished": ["would mark vanished", "marked vanished"],
  "unmark-vanished": ["would unmark", "unmarked"],
  "fail-vanished": ["would fail job", "failed job"],
  "time-out": ["would time out job", "timed out job"],
};

/** `agent-work reap [--dry-run]`: one reaper pass over every backend this configuration enables. */
export async function reapCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { "dry-run": { type: "boolean" } }, strict: true, allowPositionals: false });
  const dryRun = values["dry-run"] ?? false;
  const log = { info: () => {}, warn: () => {}, error: (obj: object, msg: string) => ctx.io.err(`${msg} ${JSON.stringify(obj)}`) };
  const report = await reap({ store: ctx.store, backends: await ctx.backends(), now: ctx.now, log: log as never, dryRun });
  const out = ctx.io.out;
  if (report.skipped) {
    out(`reaper pass skipped: ${report.skipped}`);
    return 0;
  }
  const counts = (w: Record<string, number>) =>
    Object.entries(w)
      .map(([name, n]) => `${name} ${n}`)
      .join(", ") || "none";
  out(dryRun ? "reaper dry run: nothing was changed" : "reaper pass");
  out(`  workers   ${counts(report.before.workers)}  →  ${counts(report.after.workers)}`);
  out(`  marks     ${report.before.marks}  →  ${report.after.marks}`);
  out(`  live jobs ${report.before.liveJobs}`);
  for (const line of report.incomplete) out(`  could not see everything on ${line}`);
  if (report.actions.length === 0) out("  nothing to do");
  for (const a of report.actions) {
    const verb = VERBS[a.kind][dryRun ? 0 : 1];
    out(`  ${verb}: job ${a.jobId}${a.workerId ? `, worker ${a.workerId}` : ""} on ${a.backend} (${a.reason})${a.error ? ` FAILED: ${a.error}` : ""}`);
  }
  return report.actions.some((a) => a.error) ? 1 : 0;
}
