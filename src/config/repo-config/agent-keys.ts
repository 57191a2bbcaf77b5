import { z } from "zod";
import { AGENT_PRESETS, type AgentPreset } from "../../agents/presets.js";
import { describeType } from "./describe-value.js";
import { setting } from "./setting.js";
import type { RepoConfigLimits } from "./types.js";

/** A model name as the CLIs take it; it lands in argv after `--model`, so no leading dash. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$/;

const MAX_INSTRUCTIONS = 4000;
const MAX_COMMAND_ARGS = 64;
const MAX_COMMAND_ARG_LENGTH = 1000;

/** The keys that choose the agent and what it is told: preset, command, model, instructions. */
export function agentKeys(limits: RepoConfigLimits) {
  return {
    agent: setting((value, ctx): AgentPreset => {
      if (value === undefined || value === null) return limits.defaultAgent;
      if (typeof value === "string" && (AGENT_PRESETS as readonly string[]).includes(value)) {
        return value as AgentPreset;
      }
      ctx.addIssue({
        code: "custom",
        message: `${describeType(value)} is not an agent preset; use one of ${AGENT_PRESETS.map((p) => `\`${p}\``).join(", ")}`,
      });
      return z.NEVER;
    }),
    command: setting((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      if (!Array.isArray(value) || value.length === 0 || !value.every((arg) => typeof arg === "string" && arg !== "")) {
        ctx.addIssue({
          code: "custom",
          message: `must be a non-empty list of strings, one per argument (for example \`["my-agent", "--task-file", "{prompt_file}"]\`), not ${describeType(value)}`,
        });
        return z.NEVER;
      }
      const args = value as string[];
      if (args.length > MAX_COMMAND_ARGS || args.some((arg) => arg.length > MAX_COMMAND_ARG_LENGTH || arg.includes("\0"))) {
        ctx.addIssue({
          code: "custom",
          message: `may have at most ${MAX_COMMAND_ARGS} arguments of at most ${MAX_COMMAND_ARG_LENGTH} characters each`,
        });
        return z.NEVER;
      }
      if (!args.some((arg) => arg.includes("{prompt_file}") || arg.includes("{prompt}"))) {
        ctx.addIssue({
          code: "custom",
          message: "must contain `{prompt_file}` (the path of a file with the prompt) or `{prompt}` (the prompt itself) in one of its arguments",
        });
        return z.NEVER;
      }
      return args;
    }),
    model: setting((value, ctx): string | undefined => {
      if (value === undefined || value === null) return undefined;
      // The model lands in argv after `--model`: a leading dash would read as another flag.
      if (typeof value !== "string" || !MODEL_NAME.test(value)) {
        ctx.addIssue({
          code: "custom",
          message: `${describeType(value)} is not a model name; use letters, digits and \`. _ : / @ + -\`, starting with a letter or digit (for example \`claude-sonnet-4-5\` or \`anthropic/claude-sonnet-4-5\`)`,
        });
        return z.NEVER;
      }
      return value;
    }),
    models: setting((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      const bad = Array.isArray(value) ? value.filter((m) => typeof m !== "string" || !MODEL_NAME.test(m)) : [value];
      if (!Array.isArray(value) || bad.length > 0 || value.length > 50) {
        ctx.addIssue({
          code: "custom",
          message:
            Array.isArray(value) && value.length > 50
              ? "lists more than 50 models"
              : `must be a list of model names people may pick with \`/agent run --model <name>\` (for example \`[claude-sonnet-4-5, claude-opus-4-5]\`); not a model name: ${bad.slice(0, 3).map(describeType).join(", ")}`,
        });
        return z.NEVER;
      }
      return [...new Set(value as string[])];
    }),
    instructions: setting((value, ctx): string | undefined => {
      if (value === undefined || value === null) return undefined;
      if (typeof value !== "string") {
        ctx.addIssue({ code: "custom", message: `must be text, not ${describeType(value)}` });
        return z.NEVER;
      }
      if (value.length > MAX_INSTRUCTIONS) {
        ctx.addIssue({
          code: "custom",
          message: `${value.length} characters long; at most ${MAX_INSTRUCTIONS} are allowed (they are prepended to every prompt)`,
        });
        return z.NEVER;
      }
      return value.trim() === "" ? undefined : value;
    }),
  };
}
