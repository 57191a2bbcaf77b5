import { resolve } from "node:path";
import { BACKEND_NAMES } from "../../backends/backend-names.js";
import { loadRouting, type LoadedRouting } from "../load-routing.js";
import { commaList, fieldBuilders, optionalText, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** Which backends run jobs, and how a job is given one: the local backend, routing rules, caps, the fallback order. */
export const BACKENDS_VARS = [
  {
    name: "LOCAL_BACKEND",
    secret: false,
    default: "true",
    description:
      "Run jobs on this machine (the local backend): true or false. false turns it off, for a controller that only drives ssh, gce or k8s workers (e.g. its own pod in a cluster, where it needs no bubblewrap); repositories then name their backend.",
  },
  {
    name: "BACKEND_ORDER",
    secret: false,
    description:
      "Backends to try, in order, when a job's own backend is full or down (e.g. local,ssh,gce); unset means a job waits for its own backend. A job started with --backend never moves.",
  },
  {
    name: "ROUTING_RULES",
    secret: false,
    description:
      'Rules that pick the backend of a job whose command and repository name none, first match wins, as a YAML or JSON list; a rule matches on repo (owner/name, * as a wildcard), label (one of the issue\'s labels) and size, and may ask for ssh hosts by ssh_labels; a rule without conditions matches every job, e.g. [{label: "agent-work:large", backend: gce}, {backend: local}]. Unset: such jobs run on local.',
  },
  {
    name: "ROUTING_FILE",
    secret: false,
    description: "Path of a YAML or JSON file holding the routing rules (a list, or rules: [...]), instead of ROUTING_RULES.",
  },
  {
    name: "BACKEND_CAPS",
    secret: false,
    description:
      "Limits per backend, as name=jobs at once:US dollars an hour, separated by commas; either number may be left out, e.g. gce=5:2.50,ssh=3,local=:1.00. A job whose backend is at its cap waits, or moves along BACKEND_ORDER.",
  },
] as const satisfies readonly ControllerEnvVar[];

const { bool } = fieldBuilders(BACKENDS_VARS);

export const BACKENDS_FIELDS = {
  LOCAL_BACKEND: bool("LOCAL_BACKEND"),
  BACKEND_ORDER: optionalText((v) => {
    const bad = commaList(v).filter((b) => !(BACKEND_NAMES as readonly string[]).includes(b));
    return bad.length ? `unknown backend ${bad.join(", ")}; expected names from ${BACKEND_NAMES.join(", ")} separated by commas` : null;
  }),
  ROUTING_RULES: optionalText(),
  ROUTING_FILE: optionalText(),
  BACKEND_CAPS: optionalText(),
} satisfies Record<VarName<typeof BACKENDS_VARS>, EnvField>;

/** With the variables that turn the other backends on: set means on. */
type RoutingValues = Partial<FieldValues<typeof BACKENDS_FIELDS>> & { SSH_HOSTS_FILE?: string; GCE_PROJECT?: string; K8S_NAMESPACE?: string };

/**
 * At least one backend is on, and the routing rules and caps name only backends that are
 * (src/config/load-routing.ts), with the ssh hosts' labels when the hosts file was read.
 */
export function resolveRouting(values: RoutingValues, sshHostLabels: string[][] | undefined, ctx: RuleContext): LoadedRouting {
  const { warnings, fail } = ctx;
  if (values.LOCAL_BACKEND === false && values.SSH_HOSTS_FILE === undefined && values.GCE_PROJECT === undefined && values.K8S_NAMESPACE === undefined) {
    fail("LOCAL_BACKEND", "false leaves no backend to run jobs on; set K8S_NAMESPACE, GCE_PROJECT or SSH_HOSTS_FILE as well, or leave LOCAL_BACKEND unset");
  }

  const routing = loadRouting({
    ...(values.ROUTING_RULES !== undefined ? { rulesText: values.ROUTING_RULES } : {}),
    ...(values.ROUTING_FILE !== undefined ? { rulesFile: resolve(values.ROUTING_FILE) } : {}),
    ...(values.BACKEND_CAPS !== undefined ? { capsText: values.BACKEND_CAPS } : {}),
    enabled: [
      values.LOCAL_BACKEND !== false ? "local" : "",
      values.SSH_HOSTS_FILE !== undefined ? "ssh" : "",
      values.GCE_PROJECT !== undefined ? "gce" : "",
      values.K8S_NAMESPACE !== undefined ? "k8s" : "",
    ].filter(Boolean),
    ...(sshHostLabels ? { sshHostLabels } : {}),
  });
  for (const e of routing.errors) fail(e.name, e.message);
  warnings.push(...routing.warnings);
  return routing;
}
