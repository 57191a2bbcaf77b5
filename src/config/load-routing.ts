import { readFileSync } from "node:fs";
import { parseRoutingRules, type RoutingRule } from "./routing-rules.js";
import { parseBackendCaps, type BackendCap } from "./backend-caps.js";

export interface RoutingSettings {
  /** ROUTING_RULES, as written. */
  rulesText?: string;
  /** ROUTING_FILE, resolved. */
  rulesFile?: string;
  /** BACKEND_CAPS, as written. */
  capsText?: string;
  /** The backends this configuration turns on. */
  enabled: readonly string[];
  /** Each ssh host's labels, when SSH_HOSTS_FILE was read. */
  sshHostLabels?: readonly (readonly string[])[];
}

export interface LoadedRouting {
  routingRules?: RoutingRule[];
  backendCaps?: Record<string, BackendCap>;
  /** Problems, by the variable to fix. */
  errors: { name: string; message: string }[];
  warnings: string[];
}

/**
 * The routing rules and backend caps, checked against the rest of the configuration: a rule or a
 * cap for a backend that is not turned on, or ssh labels no host carries, would leave jobs
 * waiting or refused for a reason nobody sees at start, so they are errors here.
 */
export function loadRouting(s: RoutingSettings): LoadedRouting {
  const out: LoadedRouting = { errors: [], warnings: [] };
  const fail = (name: string, message: string) => out.errors.push({ name, message });
  const enabledText = s.enabled.length ? s.enabled.join(", ") : "none";

  if (s.rulesText !== undefined && s.rulesFile !== undefined) fail("ROUTING_FILE", "set either ROUTING_RULES or ROUTING_FILE, not both");
  let source: { name: string; text: string } | undefined;
  if (s.rulesText !== undefined) source = { name: "ROUTING_RULES", text: s.rulesText };
  else if (s.rulesFile !== undefined) {
    try {
      source = { name: "ROUTING_FILE", text: readFileSync(s.rulesFile, "utf8") };
    } catch (err) {
      fail("ROUTING_FILE", `cannot read ${s.rulesFile} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  if (source) {
    const parsed = parseRoutingRules(source.text);
    if (!parsed.ok) for (const e of parsed.errors) fail(source.name, e);
    else {
      parsed.rules.forEach((rule, i) => {
        if (!s.enabled.includes(rule.backend))
          fail(source.name, `rule ${i + 1}: sends jobs to ${rule.backend}, which this configuration does not turn on (enabled: ${enabledText})`);
        if (rule.sshLabels && s.sshHostLabels && !s.sshHostLabels.some((host) => rule.sshLabels!.every((l) => host.includes(l)))) {
          fail(source.name, `rule ${i + 1}: no host in SSH_HOSTS_FILE carries every one of the labels ${rule.sshLabels.join(", ")}`);
        }
      });
      out.warnings.push(...parsed.warnings.map((w) => `${source.name}: ${w}`));
      out.routingRules = parsed.rules;
    }
  }

  if (s.capsText !== undefined) {
    const parsed = parseBackendCaps(s.capsText);
    if (!parsed.ok) for (const e of parsed.errors) fail("BACKEND_CAPS", e);
    else {
      for (const name of Object.keys(parsed.caps))
        if (!s.enabled.includes(name)) fail("BACKEND_CAPS", `caps ${name}, which this configuration does not turn on (enabled: ${enabledText})`);
      out.backendCaps = parsed.caps;
    }
  }
  return out;
}
