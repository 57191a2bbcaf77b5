import { describe, expect, it } from "vitest";
import { AGENT_PRESETS, agentCommand, isAgentPreset } from "../../src/agents/presets.js";

describe("agent presets", () => {
  it("run claude-code in print mode with its JSON stream, the prompt on stdin, and the model's budget", () => {
    expect(agentCommand("claude-code", {})).toEqual({
      argv: ["claude", "-p", "--dangerously-skip-permissions", "--output-format", "stream-json", "--verbose"],
      promptOnStdin: true,
    });
    expect(agentCommand("claude-code", { model: "claude-sonnet-4-5", maxBudgetUsd: 0.5 }).argv).toEqual([
      "claude",
      "-p",
      "--dangerously-skip-permissions",
      "--output-format",
      "stream-json",
      "--verbose",
      "--max-budget-usd",
      "0.50",
      "--model",
      "claude-sonnet-4-5",
    ]);
  });

  it("run codex exec with JSON events, no approvals inside the outer sandbox, and the prompt on stdin", () => {
    expect(agentCommand("codex", {})).toEqual({
      argv: ["codex", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check"],
      promptOnStdin: true,
    });
    expect(agentCommand("codex", { model: "gpt-5-codex", extraArgs: ["-c", "model_provider=proxy"] }).argv).toEqual([
      "codex",
      "exec",
      "--json",
      "--dangerously-bypass-approvals-and-sandbox",
      "--skip-git-repo-check",
      "-m",
      "gpt-5-codex",
      "-c",
      "model_provider=proxy",
    ]);
  });

  it("run opencode with JSON events and auto-approval, the prompt on stdin", () => {
    expect(agentCommand("opencode", { model: "anthropic/claude-sonnet-4-5" })).toEqual({
      argv: ["opencode", "run", "--format", "json", "--auto", "--model", "anthropic/claude-sonnet-4-5"],
      promptOnStdin: true,
    });
  });

  it("run aider with its message file", () => {
    expect(agentCommand("aider", { model: "sonnet" })).toEqual({
      argv: ["aider", "--yes-always", "--no-auto-commits", "--no-gitignore", "--model", "sonnet", "--message-file", "{prompt_file}"],
      promptOnStdin: false,
    });
  });

  it("runs a custom command exactly as given, as a copy", () => {
    const command = ["my-agent", "--input", "{prompt_file}"];
    const { argv, promptOnStdin } = agentCommand("command", { command, model: "ignored", extraArgs: ["--ignored"] });
    expect(argv).toEqual(["my-agent", "--input", "{prompt_file}"]);
    expect(promptOnStdin).toBe(false);
    argv.push("mutated");
    expect(command).toHaveLength(3);
  });

  it("refuses the command preset without a command", () => {
    expect(() => agentCommand("command", {})).toThrow(/needs a command/);
    expect(() => agentCommand("command", { command: [] })).toThrow(/needs a command/);
  });

  it("gives every preset a way to the prompt that is not one long argument, and no shell", () => {
    for (const preset of AGENT_PRESETS) {
      const { argv, promptOnStdin } = agentCommand(preset, { command: ["x", "{prompt_file}"] });
      expect(promptOnStdin || argv.includes("{prompt_file}")).toBe(true);
      expect(argv).not.toContain("{prompt}");
      expect(["sh", "bash", "/bin/sh", "/bin/bash"]).not.toContain(argv[0]);
    }
  });

  it("recognises preset names and nothing else", () => {
    expect(AGENT_PRESETS.every(isAgentPreset)).toBe(true);
    expect(isAgentPreset("claude")).toBe(false);
    expect(isAgentPreset(undefined)).toBe(false);
  });
});
