import type { Job } from "../jobs/types.js";
import type { RepoConfig } from "../config/repo-config.js";
import { ANSWER_FILE, type WorkerInput } from "../worker/protocol.js";
import { agentCommand } from "../agents/presets.js";
import { agentEnvironment, agentSandbox } from "../worker/agent-sandbox.js";
import { buildPrompt } from "../jobs/build-prompt.js";
import type { PipelineDeps } from "./deps.js";

/**
 * Files that steer an agent. On a pull request they are taken from the base branch, not the PR
 * head: the PR's author may not be someone the maintainers trust to instruct the agent.
 */
export const AGENT_STEERING_PATHS = [
  "AGENTS.md",
  "CLAUDE.md",
  ".claude",
  ".mcp.json",
  ".opencode",
  "opencode.json",
  ".codex",
  ".aider.conf.yml",
  ".github/agent-work.yml",
  ".github/copilot-instructions.md",
] as const;

/** What the worker script is given: where to clone and push, the agent's command, prompt and sandbox. */
export function workerInput(
  deps: PipelineDeps,
  job: Job,
  config: RepoConfig,
  run: { branch: string; onIssue: boolean; token: string | null; agentSeconds: number; modelAllowance: number },
): WorkerInput {
  const { branch, onIssue, token, agentSeconds, modelAllowance } = run;
  const forkCloneUrl = job.options.forkCloneUrl;
  // A fork's run holds no secret: not even the proxy's model key or another credential it adds.
  const sandbox = agentSandbox(forkCloneUrl ? { ...deps.config, modelProxy: undefined, egressCredentials: [] } : deps.config, config);
  return {
    jobId: job.id,
    cloneUrl: forkCloneUrl ?? job.cloneUrl,
    baseBranch: job.prHeadRef ?? job.defaultBranch,
    branch,
    ...(onIssue ? { continueBranch: true } : {}),
    ...(job.options.ask ? { ask: true } : {}),
    // A branch someone else wrote (a PR's, or an issue's that a run before pushed): the files
    // that steer the agent come from the default branch.
    steering: { fromBranch: job.defaultBranch, paths: [...AGENT_STEERING_PATHS], ...(forkCloneUrl ? { fromUrl: job.cloneUrl } : {}) },
    token: token ?? "",
    ...(forkCloneUrl ? { noSecrets: true } : {}),
    ...(() => {
      const command = agentCommand(config.agent, {
        command: config.command,
        model: config.model,
        // A CLI that can stop itself at a dollar figure gets the model's share of the job budget.
        ...(modelAllowance > 0 ? { maxBudgetUsd: modelAllowance } : {}),
        extraArgs: deps.config.agentExtraArgs?.[config.agent],
      });
      return { agentArgv: command.argv, ...(command.promptOnStdin ? { promptOnStdin: true } : {}) };
    })(),
    prompt: buildPrompt({
      repoFullName: `${job.owner}/${job.repo}`,
      number: job.number,
      kind: job.kind,
      title: job.title,
      body: job.body,
      instructionsPrefix: config.instructions,
      extraInstructions: job.instructions,
      ...(job.options.ask ? { ask: { answerFile: ANSWER_FILE } } : {}),
      comments: job.context?.comments ?? [],
    }),
    commitMessage: `${job.title}\n\nWritten by agent-work job ${job.id} for #${job.number}.`,
    author: deps.config.gitAuthor,
    agentTimeoutSeconds: agentSeconds,
    ...setupAndCache(deps, job, config, agentSeconds),
    // No model key either on a fork's run: nothing the fork's code could steal.
    agentEnv: forkCloneUrl ? {} : agentEnvironment(deps.config, sandbox),
    sandbox,
  };
}

/**
 * The repository's setup commands, within their own limit (it counts in the agent's), and its
 * dependency cache on the worker's host: keyed by the repository's id as well as its name, so a
 * repository that takes over a renamed one's name never gets its cache. A fork's run gets none: the
 * fork's code would fill the cache the repository's own runs then trust.
 */
function setupAndCache(deps: PipelineDeps, job: Job, config: RepoConfig, agentSeconds: number): Pick<WorkerInput, "setup" | "cache"> {
  if (!config.setup?.length) return {};
  const setupSeconds = Math.min(agentSeconds, (config.setupMinutes ?? 10) * deps.secondsPerMinute);
  const setup = { commands: config.setup, timeoutSeconds: setupSeconds };
  const cacheMb = deps.config.dependencyCacheMaxMb;
  if (job.options.forkCloneUrl || !(cacheMb > 0)) return { setup };
  return { setup, cache: { key: `${job.owner}+${job.repo}-${job.repoId}`, maxMb: cacheMb } };
}
