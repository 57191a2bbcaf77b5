import os from "node:os";
import { parseArgs } from "node:util";
import { isTerminal } from "../../jobs/state.js";
import { StaleStateError } from "../../store/job-store.js";
import { jobEndedEffects } from "../../store/outbox-store.js";
import type { CliContext } from "../cli-context.js";
import { UsageError } from "../format.js";

/**
 * `agent-work cancel <id>`: a queued job leaves the queue; a job that is starting or running is
 * marked cancelled first (the intent, written before the effect) and then its worker is destroyed
 * through its backend, which stops every process it runs. The controller running it sees its
 * worker end. Its GitHub status and the token revoke are written to the outbox with the end, and
 * delivered by the controller's next sweep, not from here.
 */
export async function cancelCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { positionals } = parseArgs({ args: argv, options: {}, strict: true, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError("cancel needs exactly one job id");
  const id = positionals[0]!;
  const job = await ctx.store.get(id);
  if (!job) {
    ctx.io.err(`no job ${id}`);
    return 1;
  }
  if (isTerminal(job.state)) {
    ctx.io.err(`job ${id} is already ${job.state}; nothing to cancel`);
    return 1;
  }
  if (job.state === "received") {
    ctx.io.err(`job ${id} has not been admitted yet (received); try again in a moment`);
    return 1;
  }
  const who = `cli:${os.userInfo().username}`;
  await ctx.store.update(id, { cancelRequestedBy: who });
  let cancelled;
  try {
    // The final status and the token revoke are left to the controller, written with the end
    // (its outbox sweep delivers them): this command holds no GitHub credentials of its own.
    cancelled = await ctx.store.transition(
      id,
      job.state,
      "cancelled",
      { finishedAt: ctx.now(), message: `cancelled from the ops CLI by ${who}` },
      `cancelled by ${who}`,
      { effects: jobEndedEffects(job, ctx.now()) },
    );
  } catch (err) {
    if (!(err instanceof StaleStateError)) throw err;
    const now = await ctx.store.get(id);
    ctx.io.err(`job ${id} moved from ${job.state} to ${now?.state} meanwhile; run cancel again if it is still active`);
    return 1;
  }
  ctx.io.out(`job ${id} cancelled (was ${job.state})`);
  const worker = cancelled.worker;
  if (!worker) return 0;
  const backend = (await ctx.backends()).get(worker.backend);
  if (!backend) {
    ctx.io.err(
      `its worker ${worker.id} is on the ${worker.backend} backend, which this configuration does not enable; the reaper of a controller that does will remove it`,
    );
    return 1;
  }
  try {
    await backend.destroy(worker);
    ctx.io.out(`worker ${worker.id} destroyed`);
    return 0;
  } catch (err) {
    ctx.io.err(`could not destroy worker ${worker.id}: ${err instanceof Error ? err.message : String(err)}; the reaper will remove it`);
    return 1;
  }
}
