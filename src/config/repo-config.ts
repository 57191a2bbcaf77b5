/**
 * A repository's `.github/agent-work.yml`, as Probot's `context.config` returns it (already parsed,
 * `_extends` from the org's `.github` repository already merged; null when there is no file).
 * Keys are snake_case in YAML and camelCase here. Every problem is reported, one per key, in words
 * a maintainer can act on from a comment, so a bad file never starts a job silently half-configured.
 *
 * The parts live in `repo-config/`: the types, the keys' schemas in three groups (agent, job,
 * sandbox), the parse with its unknown-key check and cross-key rule, and the errors' Markdown.
 * This file is what the rest of the code imports.
 */
export {
  AVAILABLE_BACKENDS,
  REPO_CONFIG_PATH,
  type RepoBackend,
  type RepoConfig,
  type RepoConfigError,
  type RepoConfigLimits,
  type RepoConfigResult,
  type SizeConfig,
} from "./repo-config/types.js";
export { HOST_PATTERN, MAX_SETUP_COMMANDS, MAX_SETUP_COMMAND_LENGTH } from "./repo-config/sandbox-keys.js";
export { parseRepoConfig } from "./repo-config/parse-repo-config.js";
export { formatRepoConfigErrors } from "./repo-config/format-repo-config-errors.js";
