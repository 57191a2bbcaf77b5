import { z } from "zod";
import { AGENT_PRESETS, type AgentPreset } from "../agents/presets.js";
import { BACKEND_NAMES } from "../backends/backend-names.js";

/**
 * A pattern that names the controller's own machine or a metadata server by address (or as
 * localhost): a repository may not open those; the operator may (NETWORK_ALLOW_DEFAULT).
 */
function namesThisMachine(pattern: string): boolean {
  const host = pattern.replace(/:\d{1,5}$/, "").toLowerCase();
  return /^(127\.\d+\.\d+\.\d+|0\.0\.0\.0|169\.254\.\d+\.\d+)$/.test(host) || host === "localhost" || host.endsWith(".localhost");
}

/** A host name or `*.` pattern, with an optional port: what the egress proxy matches. */
export const HOST_PATTERN = /^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/;
/**
 * A repository's `.github/agent-work.yml`, as Probot's `context.config` returns it (already parsed,
 * `_extends` from the org's `.github` repository already merged; null when there is no file).
 * Keys are snake_case in YAML and camelCase here. Every problem is reported, one per key, in words
 * a maintainer can act on from a comment, so a bad file never starts a job silently half-configured.
 */
export const REPO_CONFIG_PATH = ".github/agent-work.yml";

/**
 * Backend names a repository may ask for. Whether one is enabled is the controller's business:
 * intake answers "not enabled on this controller" for a name it has no backend for.
 */
export const AVAILABLE_BACKENDS = BACKEND_NAMES;
const PLANNED_BACKENDS: readonly string[] = [];

export type RepoBackend = (typeof AVAILABLE_BACKENDS)[number];

export interface RepoConfig {
  agent: AgentPreset;
  /** argv for `agent: command`; contains `{prompt}` or `{prompt_file}`. */
  command?: string[];
  model?: string;
  /** Models people may pick per run with `/agent run --model <name>`. */
  models?: string[];
  /** Prepended to the prompt. */
  instructions?: string;
  maxMinutes: number;
  branchPrefix: string;
  draft: boolean;
  /**
   * Unset: the controller's routing rules pick (ROUTING_RULES), else `local`. After intake the
   * job's config always has it: the backend the job was given.
   */
  backend?: RepoBackend;
  /** On the ssh backend, only hosts carrying every one of these labels take this repository's jobs. */
  sshLabels?: string[];
  priority: number;
  /** Named sizes for `agent-work:<size>` labels and `--machine <size>`. */
  sizes: Record<string, SizeConfig>;
  /** Lower limits than the controller's, in USD; never higher (the controller's stand). */
  budget: { jobUsd?: number; monthlyUsd?: number };
  /**
   * Pull requests from forks: `refuse` (default), or `patch` — a maintainer's `/agent run` works on
   * the fork's branch with no secret at all (no token, no model key) and the change is posted as a
   * patch to apply, since nothing may be pushed to someone else's fork.
   */
  forkPullRequests: "refuse" | "patch";
  /**
   * The agent's network inside its sandbox: `full` (whatever the host reaches), `none` (no network
   * at all), or `allowlist` (only the hosts in `allow` and the controller's NETWORK_ALLOW_DEFAULT,
   * through the worker's proxy).
   */
  network?: "full" | "none" | "allowlist";
  /** Host patterns the agent may reach with `network: allowlist` (`api.example.com`, `*.npmjs.org`). */
  allow?: string[];
  /**
   * Shell commands run before the agent, in its sandbox but with the network (`npm ci`, `pip
   * install -r requirements.txt`), with the repository's dependency cache; read, like the rest of
   * this file, from the default branch.
   */
  setup?: string[];
  /** With `setup`: the most minutes its commands may take together (default 10); they count in `maxMinutes`. */
  setupMinutes?: number;
  /** Lower sandbox limits than the controller's ceilings; unset means the ceiling. */
  memoryMb?: number;
  maxProcesses?: number;
  maxDiskMb?: number;
}

export interface SizeConfig {
  machine?: string;
  maxMinutes?: number;
}

export interface RepoConfigLimits {
  defaultAgent: AgentPreset;
  defaultMaxMinutes: number;
  maxMinutesCeiling: number;
  /** The controller's sandbox ceilings (SANDBOX_MAX_*); without them only the floors are checked here and the job clamps later. */
  sandboxCeilings?: { memoryMb: number; maxProcesses: number; maxDiskMb: number };
}

/** Below these an agent cannot even start (node alone maps about 50 MB and runs 7 threads). */
const SANDBOX_FLOORS = { memory_mb: 64, max_processes: 16, max_disk_mb: 16 } as const;
/** The largest values any controller accepts for its ceilings (src/config/env.ts). */
const SANDBOX_MAXIMA = { memory_mb: 1_048_576, max_processes: 65_536, max_disk_mb: 10_485_760 } as const;
const SANDBOX_UNITS = { memory_mb: "MB of memory", max_processes: "processes", max_disk_mb: "MB of disk" } as const;

export interface RepoConfigError {
  /** The YAML key (snake_case), or `(file)` when the file as a whole is wrong. */
  key: string;
  message: string;
}

export type RepoConfigResult = { ok: true; config: RepoConfig } | { ok: false; errors: RepoConfigError[] };

/** A model name as the CLIs take it; it lands in argv after `--model`, so no leading dash. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$/;

const KNOWN_KEYS = [
  "agent",
  "command",
  "model",
  "models",
  "instructions",
  "max_minutes",
  "branch_prefix",
  "draft",
  "backend",
  "ssh_labels",
  "priority",
  "sizes",
  "budget",
  "network",
  "allow",
  "memory_mb",
  "max_processes",
  "max_disk_mb",
  "fork_pull_requests",
  "setup",
  "setup_minutes",
] as const;

/** Keys Probot's config loader may leave behind; never an error. */
const LOADER_KEYS = new Set(["_extends"]);

const MAX_INSTRUCTIONS = 4000;
const MAX_COMMAND_ARGS = 64;
const MAX_COMMAND_ARG_LENGTH = 1000;
const MAX_BRANCH_PREFIX = 100;
/** The worker's own bounds (worker/lib/input.mjs): checked here too, so a bad file is refused before any worker. */
export const MAX_SETUP_COMMANDS = 20;
export const MAX_SETUP_COMMAND_LENGTH = 4000;
const DEFAULT_SETUP_MINUTES = 10;

/**
 * Shows a value from the file inside a Markdown code span, shortened: the message ends up in a
 * GitHub comment, and an `@name` or a link in a code span pings and renders nobody.
 */
function show(value: unknown): string {
  let text: string;
  if (typeof value === "string") text = value;
  else if (value === null || value === undefined) text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  const flat = text.replace(/[`\r\n\t]/g, " ");
  const short = flat.length > 40 ? `${flat.slice(0, 37)}...` : flat;
  return `\`${short}\``;
}

function describeType(value: unknown): string {
  if (value === null) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${show(value)}`;
}

/** A sandbox limit: a whole number from its floor to the controller's ceiling; unset means the ceiling. */
function sandboxLimit(key: keyof typeof SANDBOX_FLOORS, ceiling: number | undefined) {
  const floor = SANDBOX_FLOORS[key];
  const top = ceiling ?? SANDBOX_MAXIMA[key];
  return z.unknown().transform((value, ctx): number | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value) || value < floor) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${describeType(value)} is not a whole number of ${SANDBOX_UNITS[key]} from ${floor} to ${top}` });
      return z.NEVER;
    }
    if (value > top) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `${value} is above this installation's ceiling of ${top} ${SANDBOX_UNITS[key]}; use ${floor} to ${top}, or leave it out for the ceiling`,
      });
      return z.NEVER;
    }
    return value;
  });
}

function buildSchema(limits: RepoConfigLimits) {
  const ceiling = limits.maxMinutesCeiling;
  return z.object({
    agent: z.unknown().transform((value, ctx): AgentPreset => {
      if (value === undefined || value === null) return limits.defaultAgent;
      if (typeof value === "string" && (AGENT_PRESETS as readonly string[]).includes(value)) {
        return value as AgentPreset;
      }
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `${describeType(value)} is not an agent preset; use one of ${AGENT_PRESETS.map((p) => `\`${p}\``).join(", ")}`,
      });
      return z.NEVER;
    }),
    command: z.unknown().transform((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      if (!Array.isArray(value) || value.length === 0 || !value.every((arg) => typeof arg === "string" && arg !== "")) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `must be a non-empty list of strings, one per argument (for example \`["my-agent", "--task-file", "{prompt_file}"]\`), not ${describeType(value)}`,
        });
        return z.NEVER;
      }
      const args = value as string[];
      if (args.length > MAX_COMMAND_ARGS || args.some((arg) => arg.length > MAX_COMMAND_ARG_LENGTH || arg.includes("\0"))) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `may have at most ${MAX_COMMAND_ARGS} arguments of at most ${MAX_COMMAND_ARG_LENGTH} characters each`,
        });
        return z.NEVER;
      }
      if (!args.some((arg) => arg.includes("{prompt_file}") || arg.includes("{prompt}"))) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: "must contain `{prompt_file}` (the path of a file with the prompt) or `{prompt}` (the prompt itself) in one of its arguments",
        });
        return z.NEVER;
      }
      return args;
    }),
    model: z.unknown().transform((value, ctx): string | undefined => {
      if (value === undefined || value === null) return undefined;
      // The model lands in argv after `--model`: a leading dash would read as another flag.
      if (typeof value !== "string" || !MODEL_NAME.test(value)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `${describeType(value)} is not a model name; use letters, digits and \`. _ : / @ + -\`, starting with a letter or digit (for example \`claude-sonnet-4-5\` or \`anthropic/claude-sonnet-4-5\`)`,
        });
        return z.NEVER;
      }
      return value;
    }),
    models: z.unknown().transform((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      const bad = Array.isArray(value) ? value.filter((m) => typeof m !== "string" || !MODEL_NAME.test(m)) : [value];
      if (!Array.isArray(value) || bad.length > 0 || value.length > 50) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message:
            Array.isArray(value) && value.length > 50
              ? "lists more than 50 models"
              : `must be a list of model names people may pick with \`/agent run --model <name>\` (for example \`[claude-sonnet-4-5, claude-opus-4-5]\`); not a model name: ${bad.slice(0, 3).map(describeType).join(", ")}`,
        });
        return z.NEVER;
      }
      return [...new Set(value as string[])];
    }),
    instructions: z.unknown().transform((value, ctx): string | undefined => {
      if (value === undefined || value === null) return undefined;
      if (typeof value !== "string") {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be text, not ${describeType(value)}` });
        return z.NEVER;
      }
      if (value.length > MAX_INSTRUCTIONS) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `${value.length} characters long; at most ${MAX_INSTRUCTIONS} are allowed (they are prepended to every prompt)`,
        });
        return z.NEVER;
      }
      return value.trim() === "" ? undefined : value;
    }),
    max_minutes: z.unknown().transform((value, ctx): number => {
      if (value === undefined || value === null) return Math.min(limits.defaultMaxMinutes, ceiling);
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `${describeType(value)} is not a whole number of minutes; use 1 to ${ceiling}`,
        });
        return z.NEVER;
      }
      if (value > ceiling) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `${value} is above this installation's ceiling of ${ceiling} minutes; use 1 to ${ceiling}`,
        });
        return z.NEVER;
      }
      return value;
    }),
    branch_prefix: z.unknown().transform((value, ctx): string => {
      if (value === undefined || value === null) return "agent/";
      const problem = branchPrefixProblem(value);
      if (problem) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${describeType(value)} ${problem}` });
        return z.NEVER;
      }
      return value as string;
    }),
    draft: z.unknown().transform((value, ctx): boolean => {
      if (value === undefined || value === null) return true;
      if (typeof value !== "boolean") {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be \`true\` or \`false\`, not ${describeType(value)}` });
        return z.NEVER;
      }
      return value;
    }),
    backend: z.unknown().transform((value, ctx): RepoBackend | undefined => {
      if (value === undefined || value === null) return undefined;
      if (typeof value === "string" && (AVAILABLE_BACKENDS as readonly string[]).includes(value)) {
        return value as RepoBackend;
      }
      const available = AVAILABLE_BACKENDS.map((b) => `\`${b}\``).join(", ");
      const planned = typeof value === "string" && (PLANNED_BACKENDS as readonly string[]).includes(value);
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: planned
          ? `${show(value)} is not available on this installation yet; available: ${available}`
          : `${describeType(value)} is not a backend; available: ${available}`,
      });
      return z.NEVER;
    }),
    sizes: z.unknown().transform((value, ctx): Record<string, SizeConfig> => {
      if (value === undefined || value === null) return {};
      if (typeof value !== "object" || Array.isArray(value)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `must map size names to settings, such as \`large: { machine: e2-standard-4, max_minutes: 45 }\`, not ${describeType(value)}`,
        });
        return z.NEVER;
      }
      const sizes: Record<string, SizeConfig> = {};
      for (const [name, spec] of Object.entries(value as Record<string, unknown>)) {
        if (!/^[a-z0-9][a-z0-9._-]{0,39}$/i.test(name)) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `size name ${show(name)} may only use letters, digits and \`. _ -\`` });
          continue;
        }
        if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `size ${show(name)} must be a mapping with \`machine\` and/or \`max_minutes\`` });
          continue;
        }
        const size: SizeConfig = {};
        for (const [k, v] of Object.entries(spec as Record<string, unknown>)) {
          if (k === "machine" && typeof v === "string" && /^[a-z0-9][a-z0-9-]{0,62}$/.test(v)) size.machine = v;
          else if (k === "max_minutes" && typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= limits.maxMinutesCeiling) size.maxMinutes = v;
          else {
            ctx.addIssue({
              code: z.ZodIssueCode.custom,
              message:
                k === "machine" || k === "max_minutes"
                  ? `size ${show(name)}: ${show(k)} has a bad value ${show(v)} (machine: a machine type such as \`e2-standard-4\`; max_minutes: 1 to ${limits.maxMinutesCeiling})`
                  : `size ${show(name)}: unknown setting ${show(k)}; a size takes \`machine\` and \`max_minutes\``,
            });
          }
        }
        sizes[name] = size;
      }
      return sizes;
    }),
    budget: z.unknown().transform((value, ctx): { jobUsd?: number; monthlyUsd?: number } => {
      if (value === undefined || value === null) return {};
      if (typeof value !== "object" || Array.isArray(value)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be a mapping such as \`{ job_usd: 0.50, monthly_usd: 10 }\`, not ${describeType(value)}` });
        return z.NEVER;
      }
      const budget: { jobUsd?: number; monthlyUsd?: number } = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if ((k === "job_usd" || k === "monthly_usd") && typeof v === "number" && Number.isFinite(v) && v >= 0) {
          budget[k === "job_usd" ? "jobUsd" : "monthlyUsd"] = v;
        } else {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            message:
              k === "job_usd" || k === "monthly_usd"
                ? `${show(k)} must be an amount of US dollars of 0 or more, not ${show(v)}`
                : `unknown setting ${show(k)}; a budget takes \`job_usd\` and \`monthly_usd\` (they can lower the controller's limits, never raise them)`,
          });
        }
      }
      return budget;
    }),
    network: z.unknown().transform((value, ctx): "full" | "none" | "allowlist" | undefined => {
      // Unset: the controller's NETWORK_DEFAULT decides when the job runs.
      if (value === undefined || value === null) return undefined;
      if (value === "full" || value === "none" || value === "allowlist") return value;
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `${describeType(value)} is not a network setting; use \`full\` (the agent reaches the internet, e.g. its model's API), \`allowlist\` (only the hosts in \`allow\`, through a proxy) or \`none\` (no network at all, the safer choice when the agent needs none)`,
      });
      return z.NEVER;
    }),
    allow: z.unknown().transform((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      const bad = !Array.isArray(value) ? [value] : value.filter((h) => typeof h !== "string" || !HOST_PATTERN.test(h));
      const inside = Array.isArray(value) ? value.filter((h) => typeof h === "string" && HOST_PATTERN.test(h) && namesThisMachine(h)) : [];
      if (bad.length === 0 && inside.length > 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `\`allow\` may not name this machine or a link-local address (the controller's own port, a cloud metadata server): ${inside
            .map((h) => JSON.stringify(h))
            .join(", ")
            .slice(0, 200)}; the controller's NETWORK_ALLOW_DEFAULT can`,
        });
        return z.NEVER;
      }
      if (bad.length > 0 || !Array.isArray(value)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `\`allow\` takes a list of host names or patterns such as \`api.example.com\`, \`*.npmjs.org\` or \`registry.example.com:8443\`; not ${bad
            .map((b) => JSON.stringify(b))
            .join(", ")
            .slice(0, 200)}`,
        });
        return z.NEVER;
      }
      return value as string[];
    }),
    ssh_labels: z.unknown().transform((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      if (!Array.isArray(value) || value.length === 0 || value.length > 20 || !value.every((l) => typeof l === "string" && /^[^\s,]{1,63}$/.test(l))) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: Array.isArray(value)
            ? `must list 1 to 20 ssh host labels such as \`[gpu]\` (no spaces or commas in a label)`
            : `must be a list of ssh host labels such as \`[gpu]\`, not ${describeType(value)}`,
        });
        return z.NEVER;
      }
      return [...new Set(value as string[])];
    }),
    memory_mb: sandboxLimit("memory_mb", limits.sandboxCeilings?.memoryMb),
    max_processes: sandboxLimit("max_processes", limits.sandboxCeilings?.maxProcesses),
    max_disk_mb: sandboxLimit("max_disk_mb", limits.sandboxCeilings?.maxDiskMb),
    fork_pull_requests: z.unknown().transform((value, ctx): "refuse" | "patch" => {
      if (value === undefined || value === null) return "refuse";
      if (value === "refuse" || value === "patch") return value;
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `must be \`refuse\` (the default) or \`patch\` (run with no secret and post the change as a patch), not ${describeType(value)}`,
      });
      return z.NEVER;
    }),
    setup: z.unknown().transform((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      const example = 'for example `setup: ["npm ci", "pip install -r requirements.txt"]`';
      if (typeof value === "string") {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be a list of shell commands, one per step, not a single text; ${example}` });
        return z.NEVER;
      }
      if (!Array.isArray(value) || value.length === 0) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be a non-empty list of shell commands, not ${describeType(value)}; ${example}` });
        return z.NEVER;
      }
      if (value.length > MAX_SETUP_COMMANDS) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `lists ${value.length} commands; at most ${MAX_SETUP_COMMANDS} are allowed (join related ones with \`&&\`, or put them in a script)`,
        });
        return z.NEVER;
      }
      const bad = value.map((c, i) => ({ c, i })).filter(({ c }) => typeof c !== "string" || c.trim() === "" || c.includes("\0"));
      if (bad.length > 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `step ${bad[0]!.i + 1} is ${describeType(bad[0]!.c)}, not a shell command; each step is one non-empty text`,
        });
        return z.NEVER;
      }
      const long = (value as string[]).findIndex((c) => c.length > MAX_SETUP_COMMAND_LENGTH);
      if (long >= 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `step ${long + 1} is ${(value[long] as string).length} characters long; at most ${MAX_SETUP_COMMAND_LENGTH} are allowed (put a longer one in a script in the repository)`,
        });
        return z.NEVER;
      }
      return value as string[];
    }),
    setup_minutes: z.unknown().transform((value, ctx): number => {
      if (value === undefined || value === null) return Math.min(DEFAULT_SETUP_MINUTES, ceiling);
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > ceiling) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `${describeType(value)} is not a whole number of minutes from 1 to ${ceiling} (setup counts in the job's \`max_minutes\`)`,
        });
        return z.NEVER;
      }
      return value;
    }),
    priority: z.unknown().transform((value, ctx): number => {
      if (value === undefined || value === null) return 0;
      if (typeof value !== "number" || !Number.isInteger(value) || value < -10 || value > 10) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `${describeType(value)} is not a whole number from -10 to 10 (higher runs sooner; default 0)`,
        });
        return z.NEVER;
      }
      return value;
    }),
  });
}

function branchPrefixProblem(value: unknown): string | null {
  if (typeof value !== "string" || value === "") return "is not a branch prefix; use text such as `agent/`";
  if (value.length > MAX_BRANCH_PREFIX) return `is longer than ${MAX_BRANCH_PREFIX} characters`;
  if (!/^[A-Za-z0-9._/-]+$/.test(value)) return "may only use letters, digits and `. _ / -`";
  if (value.startsWith("-") || value.startsWith("/")) return "must not start with `-` or `/`";
  if (value.includes("..")) return "must not contain `..`";
  // git check-ref-format: no empty path component, none starting with `.` or ending in `.lock`.
  if (value.includes("//")) return "must not contain `//`";
  const components = value.split("/");
  if (components.some((c) => c.startsWith("."))) return "must not have a path part starting with `.`";
  if (components.some((c) => c.endsWith(".lock"))) return "must not have a path part ending in `.lock`";
  return null;
}

/** Edit distance counting a swap of two neighbours as one edit (`agnet` is one away from `agent`). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

function suggestKey(key: string): string | undefined {
  // `maxMinutes`, `max-minutes`, `Max_Minutes` all mean `max_minutes`.
  const normalised = key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/-/g, "_")
    .toLowerCase();
  let best: { key: string; distance: number } | undefined;
  for (const known of KNOWN_KEYS) {
    const distance = editDistance(normalised, known);
    if (!best || distance < best.distance) best = { key: known, distance };
  }
  if (!best) return undefined;
  const allowed = best.key.length <= 5 ? 1 : 2;
  return best.distance <= allowed ? best.key : undefined;
}

export function parseRepoConfig(raw: unknown, limits: RepoConfigLimits): RepoConfigResult {
  const input = raw === null || raw === undefined ? {} : raw;
  if (typeof input !== "object" || Array.isArray(input)) {
    return {
      ok: false,
      errors: [{ key: "(file)", message: `must be a mapping of keys to values (such as \`agent: claude-code\`), not ${describeType(input)}` }],
    };
  }

  const errors: RepoConfigError[] = [];
  const record = input as Record<string, unknown>;

  for (const key of Object.keys(record)) {
    if ((KNOWN_KEYS as readonly string[]).includes(key) || LOADER_KEYS.has(key)) continue;
    const suggestion = suggestKey(key);
    errors.push({
      key,
      message: suggestion
        ? `unknown setting; did you mean \`${suggestion}\`?`
        : `unknown setting; the settings are ${KNOWN_KEYS.map((k) => `\`${k}\``).join(", ")}`,
    });
  }

  const parsed = buildSchema(limits).safeParse(record);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      errors.push({ key: String(issue.path[0] ?? "(file)"), message: issue.message });
    }
  }

  // Cross-key rule, checked on the raw values so it is reported even when another key is bad.
  const agent = record.agent ?? limits.defaultAgent;
  const agentIsValid = typeof agent === "string" && (AGENT_PRESETS as readonly string[]).includes(agent);
  const hasCommand = record.command !== undefined && record.command !== null;
  if (agent === "command" && !hasCommand && !errors.some((e) => e.key === "command")) {
    errors.push({
      key: "command",
      message: 'required when `agent: command`; give the argv as a list, for example `["my-agent", "--task-file", "{prompt_file}"]`',
    });
  }
  if (agentIsValid && agent !== "command" && hasCommand && !errors.some((e) => e.key === "command")) {
    errors.push({
      key: "command",
      message: `only used with \`agent: command\`; remove it or set \`agent: command\` (the agent here is ${show(agent)})`,
    });
  }

  if (errors.length > 0 || !parsed.success) return { ok: false, errors };

  const data = parsed.data;
  const config: RepoConfig = {
    agent: data.agent,
    maxMinutes: data.max_minutes,
    branchPrefix: data.branch_prefix,
    draft: data.draft,
    priority: data.priority,
    sizes: data.sizes,
    budget: data.budget,
    forkPullRequests: data.fork_pull_requests,
  };
  if (data.backend !== undefined) config.backend = data.backend;
  if (data.ssh_labels !== undefined) config.sshLabels = data.ssh_labels;
  if (data.setup !== undefined) {
    config.setup = data.setup;
    config.setupMinutes = data.setup_minutes;
  }
  if (data.network !== undefined) config.network = data.network;
  if (data.allow !== undefined) config.allow = data.allow;
  if (data.memory_mb !== undefined) config.memoryMb = data.memory_mb;
  if (data.max_processes !== undefined) config.maxProcesses = data.max_processes;
  if (data.max_disk_mb !== undefined) config.maxDiskMb = data.max_disk_mb;
  if (data.command !== undefined) config.command = data.command;
  if (data.model !== undefined) config.model = data.model;
  if (data.models !== undefined) config.models = data.models;
  if (data.instructions !== undefined) config.instructions = data.instructions;
  return { ok: true, config };
}

/** The errors as Markdown for a comment on the issue: the file's path, then one bullet per key. */
export function formatRepoConfigErrors(errors: RepoConfigError[]): string {
  const bullets = errors.map((error) => {
    const key = error.key === "(file)" ? "the file as a whole" : show(error.key);
    return `- ${key}: ${error.message}`;
  });
  const heading = `**\`${REPO_CONFIG_PATH}\` has ${errors.length === 1 ? "a problem" : `${errors.length} problems`}; fix ${errors.length === 1 ? "it" : "them"} on the default branch and try again:**`;
  return [heading, "", ...bullets].join("\n");
}
