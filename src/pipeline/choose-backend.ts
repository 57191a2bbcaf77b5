import { describeRule, firstMatchingRule, type RoutingFacts, type RoutingRule } from "../config/routing-rules.js";

/** Where a job runs when nothing names a backend and no rule matches. */
export const BUILT_IN_BACKEND = "local";

export interface BackendChoice {
  backend: string;
  /** Who picked it: the person (`--backend`), the repository (`backend:`), a routing rule, or nobody. */
  by: "flag" | "repository" | "rule" | "default";
  /** The rule that picked it, as the status comment names it. */
  rule?: string;
  /** ssh hosts must carry every one of these: the repository's `ssh_labels`, else the picking rule's. */
  sshLabels?: string[];
}

/**
 * The backend a job is given at intake: the `--backend` flag, else the repository's `backend`,
 * else the first routing rule that matches, else `local`. The person and the repository come
 * before the operator's rules because they are the narrower statement (this run, this
 * repository); the operator still bounds them, since only enabled backends are accepted, and the
 * caps and BACKEND_ORDER apply whoever chose.
 */
export function chooseBackend(input: {
  flag?: string;
  repository?: string;
  repoSshLabels?: string[];
  rules: readonly RoutingRule[];
  facts: RoutingFacts;
}): BackendChoice {
  const labels = (own?: string[]) => (input.repoSshLabels ? { sshLabels: input.repoSshLabels } : own ? { sshLabels: own } : {});
  if (input.flag !== undefined) return { backend: input.flag, by: "flag", ...labels() };
  if (input.repository !== undefined) return { backend: input.repository, by: "repository", ...labels() };
  const match = firstMatchingRule(input.rules, input.facts);
  if (match) return { backend: match.rule.backend, by: "rule", rule: describeRule(match.rule, match.number), ...labels(match.rule.sshLabels) };
  return { backend: BUILT_IN_BACKEND, by: "default", ...labels() };
}
