/**
 * The coding agents agent-work knows how to start, as argv templates.
 *
 * A template is an argv array, never a shell string (R10): the worker replaces the placeholders
 * `{prompt}` (the prompt text itself) and `{prompt_file}` (the path of a file holding it) wherever
 * they occur in an element, then execs the array directly. Issue text therefore never meets a shell.
 *
 * Flags, checked against each tool's own documentation:
 * - claude-code: `claude -p "<prompt>"` is print (non-interactive) mode; `--dangerously-skip-permissions`
 *   stops it waiting for tool approvals nobody will give; `--model`.
 *   https://docs.anthropic.com/en/docs/claude-code/cli-reference
 *   The flag lets the agent run any tool without asking, so the sandbox around the agent step
 *   (bubblewrap, the VM's unprivileged user, a non-root pod) is the security boundary, not the agent.
 * - codex: `codex exec` is the non-interactive mode; `--full-auto` lets it edit files in the
 *   workspace (newer releases call it a deprecated alias of `--sandbox workspace-write` and print a
 *   warning); `-m/--model`. https://developers.openai.com/codex/noninteractive
 * - aider: `--message-file` sends one message and exits; `--yes-always` answers its confirmations;
 *   `--no-auto-commits` because the worker commits; `--no-gitignore` so it does not edit the
 *   repository's .gitignore; `--model`. https://aider.chat/docs/config/options.html
 * - opencode: `opencode run [message..]` is the non-interactive mode; `-m/--model provider/model`.
 *   https://opencode.ai/docs/cli/
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

export function agentArgv(preset: AgentPreset, opts: { command?: string[]; model?: string }): string[] {
  const model = opts.model;
  switch (preset) {
    case "claude-code":
      return ["claude", "-p", PROMPT_PLACEHOLDER, "--dangerously-skip-permissions", ...(model ? ["--model", model] : [])];
    case "codex":
      // The prompt goes last: it is the positional argument and every flag precedes it.
      return ["codex", "exec", "--full-auto", ...(model ? ["-m", model] : []), PROMPT_PLACEHOLDER];
    case "aider":
      return [
        "aider",
        "--yes-always",
        "--no-auto-commits",
        "--no-gitignore",
        ...(model ? ["--model", model] : []),
        "--message-file",
        PROMPT_FILE_PLACEHOLDER,
      ];
    case "opencode":
      // `run [message..]` is variadic, so the flags go before the message.
      return ["opencode", "run", ...(model ? ["--model", model] : []), PROMPT_PLACEHOLDER];
    case "command": {
      // The repository config validated the command; reaching here without one is a caller bug.
      if (!opts.command || opts.command.length === 0) {
        throw new Error('agent preset "command" needs a command (argv array) from .github/agent-work.yml');
      }
      // The model is not passed: a custom command decides its own flags.
      return [...opts.command];
    }
  }
}
