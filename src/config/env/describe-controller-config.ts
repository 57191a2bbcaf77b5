import { describeBackendCap } from "../backend-caps.js";
import { describeRules } from "../routing-rules.js";
import type { ControllerConfig } from "./controller-config.js";
import { mask } from "./show-value.js";

/** Where the store lives, for the start-up log: host, port and database, never the user or password. */
function describeDatabase(config: ControllerConfig): string {
  if (config.databaseUrl === undefined) return `(not set: embedded SQLite in ${config.dataDir})`;
  try {
    const url = new URL(config.databaseUrl);
    return `PostgreSQL at ${url.host || "(local socket)"}${url.pathname || ""}`;
  } catch {
    return mask(config.databaseUrl);
  }
}

/** The configuration as one flat record for the start-up log line, secrets masked. */
export function describeControllerConfig(config: ControllerConfig): Record<string, string> {
  const optional = (value: string | number | undefined) => (value === undefined ? "(not set)" : String(value));
  const secret = (value: string | undefined) => (value === undefined ? "(not set)" : mask(value));
  const agentEnvNames = Object.keys(config.agentEnv);
  return {
    appId: optional(config.appId),
    privateKey: secret(config.privateKey),
    webhookSecret: secret(config.webhookSecret),
    gheHost: optional(config.gheHost),
    gheProtocol: config.gheProtocol,
    port: String(config.port),
    host: config.host,
    requestTimeoutSeconds: String(config.requestTimeoutSeconds),
    webhookThread: String(config.webhookThread),
    metrics: config.metrics
      ? `${config.metrics.host}:${config.metrics.port}, ${config.metrics.token ? `bearer token ${mask(config.metrics.token)}` : "no token"}, ${config.metrics.repoLabels ? "with" : "without"} repository labels`
      : "(off: METRICS_PORT=0)",
    logLevel: config.logLevel,
    production: String(config.production),
    dataDir: config.dataDir,
    databaseUrl: describeDatabase(config),
    publicUrl: optional(config.publicUrl),
    webhookProxyUrl: secret(config.webhookProxyUrl),
    triggerLabel: config.triggerLabel,
    maxConcurrentJobs: String(config.maxConcurrentJobs),
    defaultAgent: config.defaultAgent,
    defaultMaxMinutes: String(config.defaultMaxMinutes),
    maxMinutesCeiling: String(config.maxMinutesCeiling),
    leaseSeconds: String(config.leaseSeconds),
    statusUpdateIntervalSeconds: String(config.statusUpdateIntervalSeconds),
    schedulerIntervalMs: String(config.schedulerIntervalMs),
    localBackend: String(config.localBackend),
    localSandbox: config.localSandbox,
    sandboxRoBinds: config.sandboxRoBinds.length > 0 ? config.sandboxRoBinds.join(",") : "(none)",
    networkDefault: config.networkDefault,
    networkAllowDefault: config.networkAllowDefault.length > 0 ? config.networkAllowDefault.join(",") : "(none)",
    egressCredentials:
      (config.egressCredentials ?? []).length > 0
        ? config.egressCredentials.map((c) => `${c.host}: ${c.header} from ${c.variable} (${mask(c.value)})`).join("; ")
        : "(none)",
    modelProxy: config.modelProxy
      ? `${config.modelProxy.host}: ${config.modelProxy.header} from ${config.modelProxy.variable} (${mask(config.modelProxy.value)})`
      : "(none)",
    sandboxCeilings: `memory ${config.sandboxCeilings.memoryMb} MB, ${config.sandboxCeilings.maxProcesses} processes, disk ${config.sandboxCeilings.maxDiskMb} MB`,
    dependencyCacheMaxMb: config.dependencyCacheMaxMb > 0 ? `${config.dependencyCacheMaxMb} MB a host` : "(off)",
    agentEnv: agentEnvNames.length > 0 ? agentEnvNames.map((name) => `${name}=${mask(config.agentEnv[name] ?? "")}`).join(", ") : "(none)",
    requiredPermission: config.requiredPermission,
    gitAuthor: `${config.gitAuthor.name} <${config.gitAuthor.email}>`,
    agentEnvSecrets: config.agentEnvSecrets
      ? Object.entries(config.agentEnvSecrets)
          .map(([name, resource]) => `${name}=${resource}`)
          .join(", ")
      : "(none)",
    gce: config.gce ? JSON.stringify({ ...config.gce, sshPrivateKey: mask(config.gce.sshPrivateKey) }) : "(off: GCE_PROJECT not set)",
    sshHostsFile: config.sshHostsFile ?? "(off: SSH_HOSTS_FILE not set)",
    pricesFile: config.pricesFile ?? "(bundled price table)",
    backendOrder: config.backendOrder.length ? config.backendOrder.join(" → ") : "(none: jobs wait for their own backend)",
    routingRules: config.routingRules ? describeRules(config.routingRules) : "(none: jobs that name no backend run on local)",
    backendCaps: config.backendCaps
      ? Object.entries(config.backendCaps)
          .map(([name, cap]) => `${name}: ${describeBackendCap(cap)}`)
          .join("; ")
      : "(none)",
    k8s: config.k8s ? JSON.stringify(config.k8s) : "(off: K8S_NAMESPACE not set)",
    cloudrun: config.cloudrun ? JSON.stringify(config.cloudrun) : "(off: CLOUDRUN_PROJECT not set)",
    signIn: config.signIn
      ? JSON.stringify({ ...config.signIn, clientSecret: mask(config.signIn.clientSecret) })
      : "(off: GITHUB_CLIENT_ID not set; nobody can sign in to the job pages)",
    sessionSecret: config.sessionSecret ? mask(config.sessionSecret) : "(derived from the App's private key)",
    logRetentionDays: String(config.logRetentionDays),
    redeliveryIntervalSeconds: config.redeliveryIntervalSeconds === 0 ? "0 (off)" : String(config.redeliveryIntervalSeconds),
    labelScanMaxAgeDays: String(config.labelScanMaxAgeDays),
    logStreamRecheckSeconds: String(config.logStreamRecheckSeconds),
    budgets: `job $${config.budgets.jobUsd}, repository $${config.budgets.repoMonthlyUsd}/month, controller $${config.budgets.globalHourlyUsd}/hour`,
  };
}
