import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { HOST_PATTERN } from "../repo-config.js";
import { NEVER_PASSED_TO_AGENT } from "./agent.js";
import { commaList, fieldBuilders, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** The agent's sandbox: its limits, what it may read, and the network it reaches. */
export const SANDBOX_VARS = [
  {
    name: "LOCAL_SANDBOX",
    secret: false,
    default: "bwrap",
    description:
      "Sandbox for the agent on the local and ssh backends: bwrap (bubblewrap, required on every host that runs agents) or none, the explicit opt-out that runs agents unsandboxed and says so in every job's log.",
  },
  {
    name: "SANDBOX_RO_BINDS",
    secret: false,
    description: "Comma-separated absolute paths the sandboxed agent may read, e.g. where the agent CLI is installed.",
  },
  {
    name: "NETWORK_DEFAULT",
    secret: false,
    default: "full",
    description:
      "The agent's network for a repository whose .github/agent-work.yml names none: full, allowlist (only NETWORK_ALLOW_DEFAULT, the MODEL_PROXY host and the repository's allow, through the worker's proxy) or none.",
  },
  {
    name: "NETWORK_ALLOW_DEFAULT",
    secret: false,
    description:
      "Comma-separated host patterns every agent under `network: allowlist` may reach besides the repository's `allow` (e.g. registry.npmjs.org,*.pypi.org).",
  },
  {
    name: "EGRESS_CREDENTIALS",
    secret: false,
    description:
      "host,header,VARIABLE[,upstream URL] rules separated by `;`: like MODEL_PROXY, for other hosts (a package registry's token): under `network: allowlist` the worker's proxy adds header=$VARIABLE to plain-HTTP requests for host, the host is allowed, and an agent given VARIABLE gets a placeholder; e.g. registry.example.com,authorization,REGISTRY_AUTH (REGISTRY_AUTH holding `Bearer <token>`).",
  },
  {
    name: "MODEL_PROXY",
    secret: false,
    description:
      "host,header,VARIABLE[,upstream URL]: under `network: allowlist` the worker's proxy adds header=$VARIABLE to plain-HTTP requests for host (forwarded to the upstream, default https://host) and the agent gets a placeholder in VARIABLE, so the model key never enters the sandbox; e.g. api.anthropic.com,x-api-key,ANTHROPIC_API_KEY with ANTHROPIC_BASE_URL=http://api.anthropic.com passed through.",
  },
  {
    name: "SANDBOX_MAX_MEMORY_MB",
    secret: false,
    default: "4096",
    description:
      "Most memory in MB a sandboxed agent may hold, all its processes together (and no one process may map more); repositories may ask for less with memory_mb.",
  },
  {
    name: "SANDBOX_MAX_PROCESSES",
    secret: false,
    default: "512",
    description: "Most processes and threads a sandboxed agent may run at once; repositories may ask for fewer with max_processes.",
  },
  {
    name: "SANDBOX_MAX_DISK_MB",
    secret: false,
    default: "10240",
    description:
      "Most disk in MB a job's work dir (the clone and what the agent writes) may use; past it the job pushes nothing. Repositories may ask for less with max_disk_mb.",
  },
  {
    name: "DEPENDENCY_CACHE_MAX_MB",
    secret: false,
    default: "2048",
    description:
      "Most disk in MB the dependency caches of all repositories with `setup:` steps may hold together on one worker host (local, ssh; a gce VM's disk); after a job the cache used longest ago is emptied until they fit. 0 turns the cache off.",
  },
] as const satisfies readonly ControllerEnvVar[];

/** A credential the worker's proxy adds to the agent's requests for one host, so the agent never holds it. */
export interface ProxyCredential {
  host: string;
  header: string;
  variable: string;
  upstream: string;
  /** The variable's value; a secret. */
  value: string;
}

/** `host,header,VARIABLE[,upstream URL]` (MODEL_PROXY, one rule of EGRESS_CREDENTIALS), or null. */
function credentialRule(raw: string): { host: string; header: string; variable: string; upstream: string } | null {
  const [host = "", header = "", variable = "", upstream, ...rest] = raw.split(",").map((p) => p.trim());
  const ok =
    rest.length === 0 &&
    HOST_PATTERN.test(host) &&
    !host.startsWith("*.") &&
    /^[A-Za-z0-9-]+$/.test(header) &&
    /^[A-Za-z_][A-Za-z0-9_]*$/.test(variable) &&
    (upstream === undefined || URL.canParse(upstream));
  return ok ? { host, header, variable, upstream: upstream ?? `https://${host}` } : null;
}

const { integer, oneOf } = fieldBuilders(SANDBOX_VARS);

export const SANDBOX_FIELDS = {
  LOCAL_SANDBOX: oneOf("LOCAL_SANDBOX", ["bwrap", "none"] as const),
  NETWORK_DEFAULT: oneOf("NETWORK_DEFAULT", ["full", "allowlist", "none"] as const),
  SANDBOX_MAX_MEMORY_MB: integer("SANDBOX_MAX_MEMORY_MB", 64, 1_048_576),
  SANDBOX_MAX_PROCESSES: integer("SANDBOX_MAX_PROCESSES", 16, 65_536),
  SANDBOX_MAX_DISK_MB: integer("SANDBOX_MAX_DISK_MB", 16, 10_485_760),
  DEPENDENCY_CACHE_MAX_MB: integer("DEPENDENCY_CACHE_MAX_MB", 0, 10_485_760),
  NETWORK_ALLOW_DEFAULT: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const patterns = commaList(raw);
      const bad = patterns.filter((p) => !HOST_PATTERN.test(p));
      if (bad.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `expected comma-separated host patterns such as registry.npmjs.org or *.pypi.org; not: ${bad.map((p) => JSON.stringify(p)).join(", ")}`,
        });
        return z.NEVER;
      }
      return patterns;
    }),
  MODEL_PROXY: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return undefined;
      const rule = credentialRule(raw);
      if (!rule) {
        ctx.addIssue({
          code: "custom",
          message: "expected host,header,VARIABLE[,upstream URL], e.g. api.anthropic.com,x-api-key,ANTHROPIC_API_KEY",
        });
        return z.NEVER;
      }
      return rule;
    }),
  EGRESS_CREDENTIALS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const parts = (raw ?? "")
        .split(";")
        .map((p) => p.trim())
        .filter((p) => p !== "");
      const rules = parts.map(credentialRule);
      const bad = parts.filter((_, i) => rules[i] === null);
      if (bad.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `expected host,header,VARIABLE[,upstream URL] rules separated by ;, e.g. registry.example.com,authorization,REGISTRY_AUTH; not: ${bad.map((b) => JSON.stringify(b.split(",")[0])).join(", ")}`,
        });
        return z.NEVER;
      }
      return rules as NonNullable<ReturnType<typeof credentialRule>>[];
    }),
  SANDBOX_RO_BINDS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const paths = commaList(raw);
      const relative = paths.filter((p) => !isAbsolute(p));
      if (relative.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `expected comma-separated absolute paths; not absolute: ${relative.map((p) => JSON.stringify(p)).join(", ")}`,
        });
        return z.NEVER;
      }
      return paths.map((p) => resolve(p));
    }),
} satisfies Record<VarName<typeof SANDBOX_VARS>, EnvField>;

type SandboxValues = Partial<FieldValues<typeof SANDBOX_FIELDS>>;

/** An allow-list that reaches nothing, and an agent with no sandbox at all, are said out loud. */
export function warnAboutSandbox(values: SandboxValues, ctx: RuleContext): void {
  const { warnings } = ctx;
  if (values.NETWORK_DEFAULT === "allowlist" && !values.MODEL_PROXY && (values.NETWORK_ALLOW_DEFAULT ?? []).length === 0) {
    warnings.push(
      "NETWORK_DEFAULT=allowlist with neither MODEL_PROXY nor NETWORK_ALLOW_DEFAULT: an agent whose repository names no `allow` reaches no host at all, its model's API included",
    );
  }
  if (values.NETWORK_DEFAULT === "allowlist" && values.LOCAL_SANDBOX === "none") {
    warnings.push(
      "NETWORK_DEFAULT=allowlist with LOCAL_SANDBOX=none: on the local and ssh backends nothing holds the agent to the allow-list (no sandbox, no network namespace); it reaches whatever the host reaches",
    );
  }
  if (values.LOCAL_SANDBOX === "none") {
    warnings.push(
      "LOCAL_SANDBOX=none: on the local and ssh backends the agent runs UNSANDBOXED as the worker's user (on the local backend, the controller's user) and can read everything that user can (the data folder, .env, other jobs' work trees), signal its processes, and use the host without limits; every job's log says so. Use it only for trying agent-work out",
    );
  }
}

/** MODEL_PROXY and EGRESS_CREDENTIALS with the values of the variables they name, which must be set and never the controller's own. */
export function resolveProxyCredentials(
  values: SandboxValues,
  ctx: RuleContext,
): { egressCredentials: ProxyCredential[]; modelProxy: ProxyCredential | undefined } {
  const { env, fail } = ctx;
  const egressCredentials: ProxyCredential[] = [];
  for (const rule of values.EGRESS_CREDENTIALS ?? []) {
    const value = env[rule.variable];
    if (value === undefined || value === "") fail("EGRESS_CREDENTIALS", `${rule.variable} is named but not set in the controller's environment`);
    else if (NEVER_PASSED_TO_AGENT.includes(rule.variable)) fail("EGRESS_CREDENTIALS", `${rule.variable} is one of the controller's own secrets`);
    else egressCredentials.push({ ...rule, value });
  }
  let modelProxy: ProxyCredential | undefined;
  if (values.MODEL_PROXY) {
    const value = env[values.MODEL_PROXY.variable];
    if (value === undefined || value === "") fail("MODEL_PROXY", `${values.MODEL_PROXY.variable} is named but not set in the controller's environment`);
    else if (NEVER_PASSED_TO_AGENT.includes(values.MODEL_PROXY.variable))
      fail("MODEL_PROXY", `${values.MODEL_PROXY.variable} is one of the controller's own secrets`);
    else modelProxy = { ...values.MODEL_PROXY, value };
  }
  return { egressCredentials, modelProxy };
}
