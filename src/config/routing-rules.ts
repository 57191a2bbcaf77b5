import { parse as parseYaml } from "yaml";
import { AVAILABLE_BACKENDS } from "./repo-config.js";

/**
 * The controller's routing rules (ROUTING_RULES inline, or ROUTING_FILE): an ordered list, the
 * first rule that matches a job picks its backend, for jobs whose backend neither the person
 * (`--backend`) nor the repository (`backend:` in `.github/agent-work.yml`) named. A rule's
 * conditions all have to hold; a rule with none matches every job (the catch-all, which gives a
 * controller without the local backend a default).
 *
 * ```yaml
 * - { label: "agent-work:large", backend: gce }
 * - { repo: "acme/ml-*", backend: ssh, ssh_labels: [gpu] }
 * - { backend: local }
 * ```
 */
export interface RoutingRule {
  /** `owner/name`, where `*` stands for any run of characters other than `/`; case-insensitive. */
  repo?: string;
  /** A label the issue or pull request carried when the job was asked for; case-insensitive. */
  label?: string;
  /** The job's size: `large` from the label `agent-work:large` or from `--machine large`. */
  size?: string;
  backend: string;
  /** ssh only: the job goes to hosts of SSH_HOSTS_FILE that carry every one of these labels. */
  sshLabels?: string[];
}

/** What a rule looks at, known when the job is taken in. */
export interface RoutingFacts {
  repoFullName: string;
  labels: readonly string[];
  size?: string;
}

export type ParseRoutingRulesResult = { ok: true; rules: RoutingRule[]; warnings: string[] } | { ok: false; errors: string[] };

const KEYS = ["repo", "label", "size", "backend", "ssh_labels"] as const;
const REPO_GLOB = /^[A-Za-z0-9._*-]{1,100}\/[A-Za-z0-9._*-]{1,100}$/;
const SIZE = /^[a-z0-9][a-z0-9._-]{0,39}$/i;
const LABEL_MAX = 50;
const HOST_LABEL = /^[^\s,]{1,63}$/;
const MAX_RULES = 200;

/**
 * Reads the rules from YAML or JSON text: a list, or `{ rules: [...] }`. Every problem is reported,
 * each named by its rule (`rule 2: …`, counted from 1 as an operator reads the file).
 */
export function parseRoutingRules(text: string): ParseRoutingRulesResult {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    return {
      ok: false,
      errors: [
        `not valid YAML or JSON: ${err instanceof Error ? err.message.split("\n")[0] : String(err)} (a pattern that starts with * needs quotes: "*/infra")`,
      ],
    };
  }
  if (raw !== null && typeof raw === "object" && !Array.isArray(raw) && Object.keys(raw).length === 1 && "rules" in raw)
    raw = (raw as { rules: unknown }).rules;
  if (!Array.isArray(raw)) return { ok: false, errors: ['expected a list of rules such as [{label: "agent-work:large", backend: gce}, {backend: local}]'] };
  if (raw.length > MAX_RULES) return { ok: false, errors: [`${raw.length} rules; at most ${MAX_RULES}`] };
  const errors: string[] = [];
  const rules: RoutingRule[] = [];
  raw.forEach((item: unknown, i) => {
    const at = `rule ${i + 1}`;
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      errors.push(`${at}: expected a mapping with \`backend\` and any of repo, label, size, ssh_labels`);
      return;
    }
    const r = item as Record<string, unknown>;
    const problems: string[] = [];
    for (const key of Object.keys(r)) if (!(KEYS as readonly string[]).includes(key)) problems.push(`unknown key \`${key}\` (the keys are ${KEYS.join(", ")})`);
    const rule: Partial<RoutingRule> = {};
    if (typeof r.backend !== "string" || !(AVAILABLE_BACKENDS as readonly string[]).includes(r.backend)) {
      problems.push(
        r.backend === undefined ? "`backend` is required" : `unknown backend ${JSON.stringify(r.backend)}; expected one of ${AVAILABLE_BACKENDS.join(", ")}`,
      );
    } else rule.backend = r.backend;
    if (r.repo !== undefined) {
      if (typeof r.repo === "string" && REPO_GLOB.test(r.repo)) rule.repo = r.repo;
      else problems.push(`repo ${JSON.stringify(r.repo)} is not an owner/name pattern such as "acme/*" or "acme/web"`);
    }
    if (r.label !== undefined) {
      if (typeof r.label === "string" && r.label.trim() !== "" && r.label.length <= LABEL_MAX) rule.label = r.label;
      else problems.push(`label ${JSON.stringify(r.label)} is not a label name (1 to ${LABEL_MAX} characters)`);
    }
    if (r.size !== undefined) {
      if (typeof r.size === "string" && SIZE.test(r.size)) rule.size = r.size;
      else problems.push(`size ${JSON.stringify(r.size)} is not a size name such as large (letters, digits, . _ -)`);
    }
    if (r.ssh_labels !== undefined) {
      if (!Array.isArray(r.ssh_labels) || r.ssh_labels.length === 0 || !r.ssh_labels.every((l) => typeof l === "string" && HOST_LABEL.test(l))) {
        problems.push(`ssh_labels ${JSON.stringify(r.ssh_labels)} is not a list of host labels such as [gpu]`);
      } else if (r.backend !== "ssh") {
        problems.push(`ssh_labels only place jobs on ssh hosts; this rule sends jobs to ${JSON.stringify(r.backend)}`);
      } else rule.sshLabels = [...new Set(r.ssh_labels as string[])];
    }
    if (problems.length > 0) errors.push(...problems.map((p) => `${at}: ${p}`));
    else rules.push(rule as RoutingRule);
  });
  if (errors.length > 0) return { ok: false, errors };
  const warnings: string[] = [];
  const catchAll = rules.findIndex((r) => r.repo === undefined && r.label === undefined && r.size === undefined);
  if (catchAll >= 0 && catchAll < rules.length - 1) {
    warnings.push(`rule ${catchAll + 1} matches every job, so the ${rules.length - catchAll - 1} after it never apply`);
  }
  return { ok: true, rules, warnings };
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&"))
    .join("[^/]*");
  return new RegExp(`^${body}$`, "i");
}

export function ruleMatches(rule: RoutingRule, facts: RoutingFacts): boolean {
  if (rule.repo !== undefined && !globToRegExp(rule.repo).test(facts.repoFullName)) return false;
  if (rule.label !== undefined) {
    const wanted = rule.label.toLowerCase();
    if (!facts.labels.some((l) => l.toLowerCase() === wanted)) return false;
  }
  if (rule.size !== undefined && rule.size.toLowerCase() !== facts.size?.toLowerCase()) return false;
  return true;
}

/** The first rule that matches, with its place in the list (from 1), or undefined. */
export function firstMatchingRule(rules: readonly RoutingRule[], facts: RoutingFacts): { rule: RoutingRule; number: number } | undefined {
  const index = rules.findIndex((rule) => ruleMatches(rule, facts));
  return index < 0 ? undefined : { rule: rules[index]!, number: index + 1 };
}

function conditionsOf(rule: RoutingRule): string {
  const conditions = [
    rule.repo !== undefined ? `repository \`${rule.repo}\`` : null,
    rule.label !== undefined ? `label \`${rule.label}\`` : null,
    rule.size !== undefined ? `size \`${rule.size}\`` : null,
  ].filter((c): c is string => c !== null);
  return conditions.length ? conditions.join(", ") : "every job";
}

/** `routing rule 2 (label \`gpu\`)`: what the status comment says picked the backend. */
export function describeRule(rule: RoutingRule, number: number): string {
  return `routing rule ${number} (${conditionsOf(rule)})`;
}

/** The whole list on one line, for the start-up log. */
export function describeRules(rules: readonly RoutingRule[]): string {
  return rules
    .map((r, i) => `${i + 1}. ${conditionsOf(r).replaceAll("`", "")} → ${r.backend}${r.sshLabels ? ` (hosts labelled ${r.sshLabels.join(", ")})` : ""}`)
    .join("; ");
}
