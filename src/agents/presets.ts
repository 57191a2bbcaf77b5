/**
 * The coding agents agent-work knows how to start, as argv templates.
 *
 * A template is an argv array, never a shell string (R10): the worker replaces the placeholders
 * `{prompt}` (the prompt text itself) and `{prompt_file}` (the path of a file holding it) wherever
 * they occur in an element, then execs the array directly. Issue text therefore never meets a shell.
 * The presets take the prompt on stdin (the worker opens the prompt file as the agent's standard
 * input): one argv element may not exceed 128 KiB on Linux, and a long discussion would fail exec.
 *
 * Flags, checked against each CLI's `--help` at the versions pinned in agent-clis/package.json
 * (tests run each preset against that real CLI, see test/integration/real-agents.test.ts):
 * - claude-code 2.1: `-p` (print mode) reads the prompt from stdin when it gets none as an
 *   argument; `--dangerously-skip-permissions` stops it waiting for tool approvals nobody will give
 *   (it refuses this as root: the sandbox runs agents as nobody when the worker is root);
 *   `--output-format stream-json --verbose` prints one JSON object a line, each assistant message
 *   with its usage and a final `result` with the run's tokens and `total_cost_usd`;
 *   `--max-budget-usd` stops it at the job's budget by its own count; `--model`.
 * - codex 0.171: `exec` reads the prompt from stdin when it gets none; `--full-auto` is gone:
 *   `--dangerously-bypass-approvals-and-sandbox` is its mode for an agent sandboxed from outside;
 *   `--json` prints JSONL events, `turn.completed` with the turn's token usage (no dollars);
 *   `--skip-git-repo-check` because the work tree's git is the agent's own throwaway repository
 *   whatever codex thinks of it; `-m`.
 * - opencode 1.18: `run` with no message reads it from stdin; `--auto` approves permissions not
 *   explicitly denied (nobody is there to answer); `--format json` prints JSON events,
 *   `step_finish` with each step's tokens and cost; `-m provider/model`.
 * - aider: `--message-file` sends one message and exits; `--yes-always` answers its confirmations;
 *   `--no-auto-commits` because the worker commits; `--no-gitignore` so it does not edit the
 *   repository's .gitignore; `--model`. https://aider.chat/docs/config/options.html
 *   aider comes from PyPI, which the machines that test this project cannot reach: untested here.
 *
 * Every flag that lets an agent act without asking makes the sandbox around the agent step
 * (bubblewrap, the VM's unprivileged user, a non-root pod) the security boundary, not the agent.
 */
export const AGENT_PRESETS = ["opencode", "claude-code", "aider", "codex", "command"] as const;

export type AgentPreset = "opencode" | "claude-code" | "aider" | "codex" | "command";

/** Replaced by the prompt text itself. */
export const PROMPT_PLACEHOLDER = "{prompt}";
/** Replaced by the path of a file holding the prompt (preferred: nothing long lands in argv). */
export const PROMPT_FILE_PLACEHOLDER = "{prompt_file}";

export function isAgentPreset(value: unknown): value is AgentPreset {
  return typeof value === "string" && (AGENT_PRESETS as readonly string[]).includes(value);
}

export interface AgentCommand {
  argv: string[];
  /** The worker opens the prompt file as the agent's standard input. */
  promptOnStdin: boolean;
}

export interface AgentCommandOptions {
  command?: string[];
  model?: string;
  /** What the agent may spend on its model, for a CLI that can stop itself there. */
  maxBudgetUsd?: number;
  /** The operator's extra flags for this preset (AGENT_EXTRA_ARGS), before the prompt. */
  extraArgs?: readonly string[];
}

export function agentCommand(preset: AgentPreset, opts: AgentCommandOptions): AgentCommand {
  const model = opts.model;
  const extra = [...(opts.extraArgs ?? [])];
  switch (preset) {
    case "claude-code":
      return {
        argv: [
          "claude",
          "-p",
          "--dangerously-skip-permissions",
          "--output-format",
          "stream-json",
          "--verbose",
          ...(opts.maxBudgetUsd !== undefined ? ["--max-budget-usd", opts.maxBudgetUsd.toFixed(2)] : []),
          ...(model ? ["--model", model] : []),
          ...extra,
        ],
        promptOnStdin: true,
      };
    case "codex":
      return {
        argv: ["codex", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check", ...(model ? ["-m", model] : []), ...extra],
        promptOnStdin: true,
      };
    case "aider":
      return {
        argv: [
          "aider",
          "--yes-always",
          "--no-auto-commits",
          "--no-gitignore",
          ...(model ? ["--model", model] : []),
          ...extra,
          "--message-file",
          PROMPT_FILE_PLACEHOLDER,
        ],
        promptOnStdin: false,
      };
    case "opencode":
      return { argv: ["opencode", "run", "--format", "json", "--auto", ...(model ? ["--model", model] : []), ...extra], promptOnStdin: true };
    case "command": {
      // The repository config validated the command; reaching here without one is a caller bug.
      if (!opts.command || opts.command.length === 0) {
        throw new Error('agent preset "command" needs a command (argv array) from .github/agent-work.yml');
      }
      // The model is not passed: a custom command decides its own flags.
      return { argv: [...opts.command], promptOnStdin: false };
    }
  }
}
