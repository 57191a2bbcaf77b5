import type { Job } from "../jobs/types.js";
import type { AgentRequest } from "../store/request-store.js";
import { checkSenderPermission } from "../github/check-sender-permission.js";
import { renderHelp } from "../commands/render-help.js";
import { isActive, isTerminal } from "../jobs/state.js";
import { StaleStateError } from "../store/job-store.js";
import { formatDuration } from "../jobs/format-duration.js";
import { formatUsd } from "../cost/estimate.js";
import { costOf, priceJob } from "../cost/price-job.js";
import { effectiveBudgets } from "../cost/budgets.js";
import { nextMonthStart, type AgentUsage } from "../cost/ledger.js";
import { modelUsageText } from "./cost-texts.js";
import type { PipelineDeps } from "./deps.js";
import { CancelRequest } from "./cancel-request.js";
import { deliverOutbox } from "./deliver-outbox.js";
import { jobEndedEffects, type NewOutboxEntry } from "../store/outbox-store.js";

export interface AnswerDeps extends PipelineDeps {
  /** Aborts a job this process is running; false when it runs nowhere here. */
  cancelRunning(jobId: string, reason: CancelRequest): boolean;
}

/**
 * Answers one recorded request and marks it done, its reply written to the outbox in the same
 * transaction, then delivers the reply. A process that dies before the request is marked done
 * answers it again having posted nothing; one that dies after leaves the reply to the sweep. The
 * reply's comment carries a marker, so a delivery whose answer was lost is found, not repeated.
 */
export async function answerAndFinish(deps: AnswerDeps, req: AgentRequest): Promise<string> {
  const { outcome, reply } = await answerRequest(deps, req);
  const effects: NewOutboxEntry[] = reply
    ? [
        {
          key: `reply:${req.id}`,
          installationId: req.installationId,
          jobId: null,
          effect: { kind: "comment", owner: req.owner, repo: req.repo, issueNumber: req.number, body: reply },
        },
      ]
    : [];
  await deps.requests.finish(req.id, outcome, effects, { owner: deps.owner, leaseMs: deps.config.leaseSeconds * 1000 });
  await deps.onStep?.("answered", null);
  if (effects.length)
    await deliverOutbox(
      deps,
      effects.map((e) => e.key),
    );
  return outcome;
}

/**
 * Works out one recorded command or button click: does what it asks and returns the one short
 * reply it gets (none for a button that did its work: the status surfaces change). The 👀 on the
 * comment that asked is added at once: GitHub keeps one reaction per person and content, so doing
 * it again after a crash adds nothing.
 */
export async function answerRequest(deps: AnswerDeps, req: AgentRequest): Promise<{ outcome: string; reply?: string }> {
  const octokit = await deps.github.forInstallation(req.installationId);
  const log = deps.log.child({ requestId: req.id, deliveryId: req.deliveryId, verb: req.verb });
  const { owner, repo } = req;
  const quote = req.args.line ? `> ${req.args.line}\n\n` : "";
  let replyText: string | undefined;
  const reply = async (text: string) => {
    replyText = deps.redactor.redact(`${quote}${text}`);
  };
  const answered = (outcome: string) => ({ outcome, ...(replyText !== undefined ? { reply: replyText } : {}) });
  if (req.args.commentId) {
    await octokit.rest.reactions.createForIssueComment({ owner, repo, comment_id: req.args.commentId, content: "eyes" });
  }
  const help = () => renderHelp({ requiredPermission: deps.config.requiredPermission, triggerLabel: deps.config.triggerLabel });

  switch (req.verb) {
    case "help":
      await reply(help());
      return answered("help");
    case "unknown":
      await reply(
        `@${req.sender} \`/agent ${req.args.word ?? ""}\` is not a command.${req.args.suggestion ? ` Did you mean \`/agent ${req.args.suggestion}\`?` : ""}\n\n${help()}`,
      );
      return answered("unknown");
    case "bad_flag":
      await reply(`@${req.sender} agent-work did not start: ${req.args.message ?? "a flag is wrong"}. \`/agent help\` lists the flags.`);
      return answered("bad flag");
    case "status":
      await reply(await statusText(deps, req));
      return answered("status");
    case "cost":
      await reply(await costText(deps, req));
      return answered("cost");
    case "stop":
    case "retry": {
      const verdict = await checkSenderPermission(octokit, { owner, repo, username: req.sender }, deps.config.requiredPermission);
      if (!verdict.allowed) {
        log.info({ permission: verdict.permission }, "refused");
        // The job page offers Cancel only to people with write access; a refusal there is no news.
        if (req.source === "web") return answered("refused");
        await reply(`@${req.sender} agent-work did not ${req.verb}: ${verdict.reason}.`);
        return answered("refused");
      }
      return answered(req.verb === "stop" ? await stop(deps, req, reply) : await retry(deps, req, reply));
    }
    default:
      log.warn("unknown request verb; ignored");
      return answered("ignored");
  }
}

async function targetJob(deps: PipelineDeps, req: AgentRequest): Promise<Job | undefined> {
  if (req.args.jobId) return deps.store.get(req.args.jobId);
  return (await deps.store.activeFor(req.repoId, req.number)) ?? (await deps.store.lastFor(req.repoId, req.number));
}

async function stop(deps: AnswerDeps, req: AgentRequest, reply: (t: string) => Promise<void>): Promise<string> {
  // A request waiting for the running job goes too (a button names one job: only that one stops).
  const dropped = req.args.jobId ? [] : await dropWaiting(deps, req);
  const job = await targetJob(deps, req);
  if (dropped.length > 0 && (!job || !isActive(job.state))) {
    if (req.source !== "web") await reply(`@${req.sender} the waiting job ${dropped.map((id) => `\`${id}\``).join(", ")} will not start.`);
    return "dropped the waiting job";
  }
  if (!job || !isActive(job.state)) {
    // A click on the job page after the job ended needs no public comment; the page shows the state.
    if (req.source !== "web") await reply(`@${req.sender} there is no running agent-work job here to stop.`);
    return "nothing to stop";
  }
  const reason = new CancelRequest(req.sender);
  // Write the intent first: whoever runs the job (or recovers it) sees who stopped it.
  await deps.store.update(job.id, { cancelRequestedBy: req.sender });
  if (job.state === "queued") {
    try {
      // The final status goes with the state change, through the outbox: ended and not yet shown is no state to die in.
      const effects = jobEndedEffects(job, deps.now());
      await deps.store.transition(
        job.id,
        "queued",
        "cancelled",
        { finishedAt: deps.now(), message: `stopped by @${req.sender} before it started` },
        undefined,
        {
          effects,
          deliverer: { owner: deps.owner, leaseMs: deps.config.leaseSeconds * 1000 },
        },
      );
      await deliverOutbox(
        deps,
        effects.map((e) => e.key),
      );
      if (req.source === "comment") await reply(`@${req.sender} job \`${job.id}\` was taken off the queue; nothing ran.`);
      return "dequeued";
    } catch (err) {
      if (!(err instanceof StaleStateError)) throw err;
      // Claimed in the meantime: stop it as a running job.
    }
  }
  const stopped = deps.cancelRunning(job.id, reason);
  if (req.source === "comment") {
    await reply(
      stopped
        ? `@${req.sender} stopping job \`${job.id}\`: its worker is being destroyed.`
        : `@${req.sender} job \`${job.id}\` is not running in this controller; it is marked to stop and its worker will be destroyed when it is found.`,
    );
  }
  return stopped ? "stopping" : "marked";
}

/** Rejects the jobs waiting on the issue for its active one (src/pipeline/intake-job.ts). */
async function dropWaiting(deps: PipelineDeps, req: AgentRequest): Promise<string[]> {
  const dropped: string[] = [];
  for (const waiting of await deps.store.receivedFor(req.repoId, req.number)) {
    if (!waiting.options.waitingFor) continue;
    try {
      await deps.store.transition(waiting.id, "received", "rejected", { message: `stopped by @${req.sender} while it waited`, finishedAt: deps.now() });
      dropped.push(waiting.id);
    } catch (err) {
      if (!(err instanceof StaleStateError)) throw err;
    }
  }
  return dropped;
}

/**
 * Runs the last job (or the one a button names) again on the same inputs. While a job is active
 * on the issue the retry waits for it like any other request: intake gives it the issue's one
 * waiting slot (src/pipeline/intake-job.ts) and says so.
 */
async function retry(deps: PipelineDeps, req: AgentRequest, reply: (t: string) => Promise<void>): Promise<string> {
  const last = await targetJob(deps, req);
  if (!last || !(isTerminal(last.state) || isActive(last.state))) {
    await reply(`@${req.sender} there is no earlier agent-work job here to retry; \`/agent run\` starts one.`);
    return "nothing to retry";
  }
  const { job } = await deps.store.insertReceived(
    {
      deliveryId: `retry:${req.deliveryId}`,
      installationId: req.installationId,
      repoId: last.repoId,
      owner: last.owner,
      repo: last.repo,
      number: last.number,
      kind: last.kind,
      trigger: last.trigger,
      requester: req.sender,
      title: last.title,
      body: last.body,
      cloneUrl: last.cloneUrl,
      defaultBranch: last.defaultBranch,
      instructions: last.instructions,
      options: last.options,
      triggerCommentId: req.args.commentId ?? null,
      retryOf: last.id,
      ...(last.context ? { context: last.context } : {}),
    },
    { backend: last.backend },
  );
  deps.log.info({ jobId: job.id, retryOf: last.id }, "retry recorded");
  return `retry as ${job.id}`;
}

function stepNow(job: Job): string {
  return job.steps.find((s) => s.status === "running")?.name ?? job.steps.filter((s) => s.status === "done").at(-1)?.name ?? "none yet";
}

/** What a job has cost: billed when it is over, its rate × time so far while it runs. */
async function jobCost(deps: PipelineDeps, job: Job, now: number): Promise<string> {
  const entry = await deps.ledger.get(job.id);
  if (!entry) return "nothing (no worker was started)";
  if (entry.state === "final") {
    const compute = `${formatDuration(entry.billedSeconds ?? 0)} of compute`;
    if (!entry.agentUsage) return `${formatUsd(entry.totalUsd ?? 0)} for ${compute}`;
    // compute + model = total, as the bill shows it.
    const modelUsd = entry.agentUsage.costUsd ?? 0;
    return `${formatUsd(entry.totalUsd ?? 0)}: compute ${formatUsd((entry.totalUsd ?? 0) - modelUsd)} for ${compute} + ${modelUsageText(entry.agentUsage)}`;
  }
  const seconds = (now - entry.startedAt) / 1000;
  try {
    const pricing = priceJob({ backend: job.backend, machine: job.options.machine }, deps.config.gce, deps.priceTable, deps.config.cloudrun);
    return `${formatUsd(costOf(pricing, seconds, deps.priceTable).totalUsd)} so far (${formatDuration(seconds)}; at most ${formatUsd(entry.reservedUsd)})`;
  } catch {
    return `${formatDuration(seconds)} of compute so far`;
  }
}

async function statusText(deps: PipelineDeps, req: AgentRequest): Promise<string> {
  const job = await targetJob(deps, req);
  if (!job) return `@${req.sender} there is no agent-work job here yet; \`/agent run\` starts one.`;
  const now = deps.now();
  const link = job.commentId ? ` ([status](https://github.com/${job.owner}/${job.repo}/issues/${job.number}#issuecomment-${job.commentId}))` : "";
  return [
    `@${req.sender} job \`${job.id}\`${link}:`,
    "",
    `- state: **${job.state.replace("_", " ")}**${job.message ? ` (${job.message})` : ""}`,
    `- step: ${stepNow(job)}`,
    `- running for: ${formatDuration(((job.finishedAt ?? now) - job.createdAt) / 1000)}`,
    `- backend: \`${job.backend}\``,
    `- cost: ${await jobCost(deps, job, now)}`,
    ...(job.prUrl ? [`- pull request: ${job.prUrl}`] : []),
  ].join("\n");
}

/** The model's share in the month's table: dollars, or tokens when nothing priced them. */
function modelCell(usage: AgentUsage | null): string {
  if (!usage) return "-";
  const tokens = `${((usage.inputTokens ?? 0) + (usage.outputTokens ?? 0)).toLocaleString("en-US")} tokens`;
  return usage.costUsd === undefined ? `${tokens}, unpriced` : `${formatUsd(usage.costUsd)} (${tokens})`;
}

async function costText(deps: PipelineDeps, req: AgentRequest): Promise<string> {
  const now = deps.now();
  const entries = await deps.ledger.entriesThisMonth(req.repoId);
  const last = await targetJob(deps, req);
  const month = new Date(now).toLocaleString("en", { month: "long", year: "numeric", timeZone: "UTC" });
  const spent = await deps.ledger.monthToDate(req.repoId);
  const budget = effectiveBudgets(deps.config.budgets, last?.config?.budget).repoMonthlyUsd;
  const seconds = entries.reduce((sum, e) => sum + (e.billedSeconds ?? 0), 0);
  const resets = new Date(nextMonthStart(now)).toISOString().slice(0, 10);
  return [
    `@${req.sender} ${last ? `job \`${last.id}\` cost ${await jobCost(deps, last, now)}.` : "no agent-work job has run here yet."}`,
    "",
    `${req.owner}/${req.repo} in ${month} (UTC): ${entries.length} job${entries.length === 1 ? "" : "s"}, ${formatUsd(spent)} of the ${formatUsd(budget)} monthly budget (resets ${resets}), ${formatDuration(seconds)} of compute.`,
    "",
    "| job | backend | machine | compute | model | cost |",
    "| --- | --- | --- | --- | --- | --- |",
    ...entries
      .slice(-20)
      .map(
        (e) =>
          `| \`${e.jobId}\` | ${e.backend} | ${e.machineType ? `${e.machineType}${e.spot ? " spot" : ""}` : "-"} | ${e.billedSeconds === null ? "running" : formatDuration(e.billedSeconds)} | ${modelCell(e.agentUsage)} | ${formatUsd(e.totalUsd ?? e.reservedUsd)}${e.state === "reserved" ? " (reserved)" : ""} |`,
      ),
  ].join("\n");
}
