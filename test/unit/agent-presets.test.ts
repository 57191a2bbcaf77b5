import { describe, expect, it } from "vitest";
import { AGENT_PRESETS, agentArgv, isAgentPreset } from "../../src/agents/presets.js";

describe("agent presets", () => {
  it("starts Claude Code in print mode with the prompt as one argument", () => {
    expect(agentArgv("claude-code", {})).toEqual(["claude", "-p", "{prompt}", "--dangerously-skip-permissions"]);
    expect(agentArgv("claude-code", { model: "claude-sonnet-4-5" })).toEqual([
      "claude",
      "-p",
      "{prompt}",
      "--dangerously-skip-permissions",
      "--model",
      "claude-sonnet-4-5",
    ]);
  });

  it("starts Codex with exec --full-auto and the prompt last", () => {
    expect(agentArgv("codex", {})).toEqual(["codex", "exec", "--full-auto", "{prompt}"]);
    expect(agentArgv("codex", { model: "gpt-5-codex" })).toEqual([
      "codex",
      "exec",
      "--full-auto",
      "-m",
      "gpt-5-codex",
      "{prompt}",
    ]);
  });

  it("starts aider with the prompt in a file and without its own commits", () => {
    expect(agentArgv("aider", {})).toEqual([
      "aider",
      "--yes-always",
      "--no-auto-commits",
      "--no-gitignore",
      "--message-file",
      "{prompt_file}",
    ]);
    expect(agentArgv("aider", { model: "sonnet" })).toEqual([
      "aider",
      "--yes-always",
      "--no-auto-commits",
      "--no-gitignore",
      "--model",
      "sonnet",
      "--message-file",
      "{prompt_file}",
    ]);
  });

  it("starts opencode with run and the message last", () => {
    expect(agentArgv("opencode", {})).toEqual(["opencode", "run", "{prompt}"]);
    expect(agentArgv("opencode", { model: "anthropic/claude-sonnet-4-5" })).toEqual([
      "opencode",
      "run",
      "--model",
      "anthropic/claude-sonnet-4-5",
      "{prompt}",
    ]);
  });

  it("runs a custom command exactly as given, as a copy", () => {
    const command = ["my-agent", "--input", "{prompt_file}"];
    const argv = agentArgv("command", { command, model: "ignored" });
    expect(argv).toEqual(["my-agent", "--input", "{prompt_file}"]);
    argv.push("mutated");
    expect(command).toHaveLength(3);
  });

  it("refuses the command preset without a command", () => {
    expect(() => agentArgv("command", {})).toThrow(/needs a command/);
    expect(() => agentArgv("command", { command: [] })).toThrow(/needs a command/);
  });

  it("gives every preset an argv with a prompt placeholder and no shell", () => {
    for (const preset of AGENT_PRESETS) {
      const argv = agentArgv(preset, { command: ["x", "{prompt}"] });
      expect(argv.some((a) => a.includes("{prompt}") || a.includes("{prompt_file}"))).toBe(true);
      expect(["sh", "bash", "/bin/sh", "/bin/bash"]).not.toContain(argv[0]);
    }
  });

  it("recognises preset names and nothing else", () => {
    expect(AGENT_PRESETS.every(isAgentPreset)).toBe(true);
    expect(isAgentPreset("claude")).toBe(false);
    expect(isAgentPreset(undefined)).toBe(false);
  });
});
