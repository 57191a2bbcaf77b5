import { z } from "zod";
import { AGENT_PRESETS, isAgentPreset } from "../../agents/presets.js";
import { commaList, fieldBuilders, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** What the agent is given: its environment, its extra flags, and the author of its commits. */
export const AGENT_VARS = [
  {
    name: "AGENT_ENV_PASSTHROUGH",
    secret: false,
    description: "Comma-separated names of controller environment variables handed to the agent, e.g. ANTHROPIC_API_KEY.",
  },
  {
    name: "AGENT_EXTRA_ARGS",
    secret: false,
    description:
      'Extra command-line flags per agent preset as JSON, e.g. {"codex":["-c","model_provider=proxy"]} (a provider or proxy a CLI takes no environment variable for); never secrets, argv is readable on the host.',
  },
  { name: "GIT_AUTHOR_NAME", secret: false, default: "agent-work[bot]", description: "Author name of the agent's commits." },
  {
    name: "GIT_AUTHOR_EMAIL",
    secret: false,
    default: "agent-work[bot]@users.noreply.github.com",
    description: "Author email of the agent's commits (GitHub links <app-user-id>+<slug>[bot]@users.noreply.github.com to the app).",
  },
  {
    name: "AGENT_ENV_FROM_SECRET_MANAGER",
    secret: false,
    description: "Agent environment read from Secret Manager at start, as NAME=projects/<p>/secrets/<s> pairs separated by commas (latest version).",
  },
] as const satisfies readonly ControllerEnvVar[];

/** Controller secrets the agent must never receive, whatever AGENT_ENV_PASSTHROUGH says (R12). */
export const NEVER_PASSED_TO_AGENT = [
  "APP_ID",
  "PRIVATE_KEY",
  "PRIVATE_KEY_PATH",
  "WEBHOOK_SECRET",
  "DATABASE_URL",
  // GitHub credentials: the agent holds none; the worker pushes with a repo-scoped token of its own.
  "GITHUB_TOKEN",
  "GH_TOKEN",
];

const SECRET_RESOURCE = /^projects\/[^/\s]+\/secrets\/[A-Za-z0-9_-]{1,255}(\/versions\/[A-Za-z0-9_-]+)?$/;

const { text } = fieldBuilders(AGENT_VARS);

export const AGENT_FIELDS = {
  AGENT_ENV_PASSTHROUGH: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const names = commaList(raw);
      const malformed = names.filter((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n));
      if (malformed.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `expected comma-separated environment variable names such as ANTHROPIC_API_KEY; not a name: ${malformed.map((n) => JSON.stringify(n)).join(", ")}`,
        });
        return z.NEVER;
      }
      return names;
    }),
  AGENT_EXTRA_ARGS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return undefined;
      const problem = (message: string) => {
        ctx.addIssue({ code: "custom", message });
        return z.NEVER;
      };
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        return problem('expected JSON such as {"codex":["-c","model_provider=proxy"]}');
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
        return problem('expected a JSON object of preset names to lists of flags, such as {"codex":["-c","model_provider=proxy"]}');
      const out: Record<string, string[]> = {};
      for (const [preset, flags] of Object.entries(parsed)) {
        if (!isAgentPreset(preset) || preset === "command")
          return problem(
            `${JSON.stringify(preset)} is not an agent preset with flags of its own; use ${AGENT_PRESETS.filter((p) => p !== "command").join(", ")}`,
          );
        if (!Array.isArray(flags) || !flags.every((f) => typeof f === "string" && f.length > 0 && !f.includes("\0")))
          return problem(`${preset}: expected a list of non-empty strings`);
        out[preset] = flags;
      }
      return out;
    }),
  GIT_AUTHOR_NAME: text("GIT_AUTHOR_NAME", (v) => (/[<>\n\r\0]/.test(v) ? "expected a name without <, > or line breaks" : null)),
  GIT_AUTHOR_EMAIL: text("GIT_AUTHOR_EMAIL", (v) =>
    /^[^\s<>@]+@[^\s<>@]+$/.test(v) ? null : "expected an email address such as agent-work[bot]@users.noreply.github.com",
  ),
  AGENT_ENV_FROM_SECRET_MANAGER: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const pairs: Record<string, string> = {};
      const bad: string[] = [];
      for (const item of commaList(raw)) {
        const [name, resource] = [item.slice(0, item.indexOf("=")).trim(), item.slice(item.indexOf("=") + 1).trim()];
        if (!item.includes("=") || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || !SECRET_RESOURCE.test(resource)) bad.push(item);
        else pairs[name] = resource;
      }
      if (bad.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `expected NAME=projects/<project>/secrets/<secret> pairs separated by commas; not one: ${bad.map((b) => JSON.stringify(b)).join(", ")}`,
        });
        return z.NEVER;
      }
      return pairs;
    }),
} satisfies Record<VarName<typeof AGENT_VARS>, EnvField>;

type AgentValues = Partial<FieldValues<typeof AGENT_FIELDS>>;

/** AGENT_ENV_PASSTHROUGH: each named variable's value, which must be set and never one of the controller's secrets. */
export function resolveAgentEnv(values: AgentValues, ctx: RuleContext): Record<string, string> {
  const { env, fail } = ctx;
  const agentEnv: Record<string, string> = {};
  for (const name of values.AGENT_ENV_PASSTHROUGH ?? []) {
    if (NEVER_PASSED_TO_AGENT.includes(name)) {
      fail("AGENT_ENV_PASSTHROUGH", `${name} must never reach the agent; remove it (the agent may not receive ${NEVER_PASSED_TO_AGENT.join(", ")})`);
    } else if (env[name] === undefined || env[name] === "") {
      fail("AGENT_ENV_PASSTHROUGH", `${name} is listed but not set in the controller's environment; set it or remove it from the list`);
    } else {
      agentEnv[name] = env[name];
    }
  }
  return agentEnv;
}

/** AGENT_ENV_FROM_SECRET_MANAGER: never a controller secret, and never a variable AGENT_ENV_PASSTHROUGH gives already. */
export function resolveAgentEnvSecrets(values: AgentValues, agentEnv: Record<string, string>, ctx: RuleContext): Record<string, string> {
  const { fail } = ctx;
  const agentEnvSecrets = values.AGENT_ENV_FROM_SECRET_MANAGER ?? {};
  for (const name of Object.keys(agentEnvSecrets)) {
    if (NEVER_PASSED_TO_AGENT.includes(name)) fail("AGENT_ENV_FROM_SECRET_MANAGER", `${name} must never reach the agent; remove it`);
    else if (name in agentEnv) fail("AGENT_ENV_FROM_SECRET_MANAGER", `${name} is also in AGENT_ENV_PASSTHROUGH; give it one source`);
  }
  return agentEnvSecrets;
}
