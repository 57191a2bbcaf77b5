import type { RepoConfig } from "../config/repo-config.js";
import type { JobOptions } from "../jobs/types.js";
import type { RoutingFacts, RoutingRule } from "../config/routing-rules.js";
import { chooseBackend } from "./choose-backend.js";

/**
 * Applies what a command's flags or a size label asked for to the repository's config, within
 * what that config allows: a size must be one the config defines, a backend one this controller
 * runs (picked by chooseBackend, the controller's routing rules included), and minutes at most the
 * repository's own limit (or the size's).
 */
export function resolveJobOptions(
  config: RepoConfig,
  options: JobOptions,
  enabledBackends: readonly string[],
  routing: { rules: readonly RoutingRule[]; facts: Omit<RoutingFacts, "size"> } = { rules: [], facts: { repoFullName: "", labels: [] } },
): { ok: true; config: RepoConfig; machine?: string; sshLabels?: string[]; rule?: string } | { ok: false; reason: string } {
  const sizeName = options.machine ?? options.size;
  let machine: string | undefined;
  let sizeMinutes: number | undefined;
  if (sizeName !== undefined) {
    const size = config.sizes[sizeName];
    if (!size) {
      const known = Object.keys(config.sizes);
      return {
        ok: false,
        reason: `there is no size \`${sizeName}\` in \`.github/agent-work.yml\`${known.length ? ` (sizes: ${known.map((k) => `\`${k}\``).join(", ")})` : " (it defines no `sizes`)"}`,
      };
    }
    machine = size.machine;
    sizeMinutes = size.maxMinutes;
  }
  const choice = chooseBackend({
    ...(options.backend !== undefined ? { flag: options.backend } : {}),
    ...(config.backend !== undefined ? { repository: config.backend } : {}),
    ...(config.sshLabels ? { repoSshLabels: config.sshLabels } : {}),
    rules: routing.rules,
    facts: { ...routing.facts, ...(sizeName !== undefined ? { size: sizeName } : {}) },
  });
  const backend = choice.backend;
  if (!enabledBackends.includes(backend)) {
    return {
      ok: false,
      reason: `the backend \`${backend}\`${choice.rule ? ` (picked by ${choice.rule})` : ""} is not enabled on this controller (enabled: ${enabledBackends.map((b) => `\`${b}\``).join(", ")})`,
    };
  }
  // A model picked per run must be one the repository lists: the maintainers decide what it may cost.
  if (options.model !== undefined && !(config.models ?? []).includes(options.model)) {
    const listed = config.models ?? [];
    return {
      ok: false,
      reason: `the model \`${options.model}\` is not in \`models\` of \`.github/agent-work.yml\`${listed.length ? ` (models: ${listed.map((m) => `\`${m}\``).join(", ")})` : " (it lists none, so `--model` cannot pick one)"}`,
    };
  }
  const limit = sizeMinutes ?? config.maxMinutes;
  if (options.maxMinutes !== undefined && options.maxMinutes > limit) {
    return { ok: false, reason: `\`--max-minutes ${options.maxMinutes}\` is more than this repository allows (${limit})` };
  }
  return {
    ok: true,
    config: {
      ...config,
      backend: backend as RepoConfig["backend"],
      maxMinutes: options.maxMinutes ?? limit,
      ...(options.model !== undefined ? { model: options.model } : {}),
    },
    ...(machine ? { machine } : {}),
    ...(choice.sshLabels ? { sshLabels: choice.sshLabels } : {}),
    ...(choice.rule ? { rule: choice.rule } : {}),
  };
}
