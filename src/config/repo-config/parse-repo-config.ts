import { z } from "zod";
import { AGENT_PRESETS } from "../../agents/presets.js";
import { agentKeys } from "./agent-keys.js";
import { describeType, show } from "./describe-value.js";
import { jobKeys } from "./job-keys.js";
import { sandboxKeys } from "./sandbox-keys.js";
import { KNOWN_KEYS, suggestKey } from "./suggest-key.js";
import type { RepoConfig, RepoConfigError, RepoConfigLimits, RepoConfigResult } from "./types.js";

/** Keys Probot's config loader may leave behind; never an error. */
const LOADER_KEYS = new Set(["_extends"]);

/**
 * Schemas by the limits they were built for: building one is a few hundred zod objects, and every
 * job's intake asks with the same limits (the controller's settings) in a fresh object.
 */
const schemas = new Map<string, ReturnType<typeof buildSchema>>();

function schemaFor(limits: RepoConfigLimits): ReturnType<typeof buildSchema> {
  const key = JSON.stringify([limits.defaultAgent, limits.defaultMaxMinutes, limits.maxMinutesCeiling, limits.sandboxCeilings ?? null]);
  let schema = schemas.get(key);
  if (!schema) {
    // Tests try many limits; a controller has one set.
    if (schemas.size >= 16) schemas.clear();
    schema = buildSchema(limits);
    schemas.set(key, schema);
  }
  return schema;
}

function buildSchema(limits: RepoConfigLimits) {
  const agent = agentKeys(limits);
  const job = jobKeys(limits);
  const sandbox = sandboxKeys(limits);
  // Key by key: zod checks them in this order, which is the order their problems are listed in.
  return z.object({
    agent: agent.agent,
    command: agent.command,
    model: agent.model,
    models: agent.models,
    instructions: agent.instructions,
    max_minutes: job.max_minutes,
    branch_prefix: job.branch_prefix,
    draft: job.draft,
    backend: job.backend,
    sizes: job.sizes,
    budget: job.budget,
    network: sandbox.network,
    allow: sandbox.allow,
    ssh_labels: job.ssh_labels,
    memory_mb: sandbox.memory_mb,
    max_processes: sandbox.max_processes,
    max_disk_mb: sandbox.max_disk_mb,
    fork_pull_requests: sandbox.fork_pull_requests,
    setup: sandbox.setup,
    setup_minutes: sandbox.setup_minutes,
    priority: job.priority,
  });
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

  const parsed = schemaFor(limits).safeParse(record);
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
