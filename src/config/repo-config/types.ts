import type { AgentPreset } from "../../agents/presets.js";
import { BACKEND_NAMES } from "../../backends/backend-names.js";

/** Where a repository keeps its settings for agent-work. */
export const REPO_CONFIG_PATH = ".github/agent-work.yml";

/**
 * Backend names a repository may ask for. Whether one is enabled is the controller's business:
 * intake answers "not enabled on this controller" for a name it has no backend for.
 */
export const AVAILABLE_BACKENDS = BACKEND_NAMES;

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

export interface RepoConfigError {
  /** The YAML key (snake_case), or `(file)` when the file as a whole is wrong. */
  key: string;
  message: string;
}

export type RepoConfigResult = { ok: true; config: RepoConfig } | { ok: false; errors: RepoConfigError[] };
