import { resolve } from "node:path";
import { resolveAgentEnv, resolveAgentEnvSecrets } from "./agent.js";
import { resolveRouting } from "./backends.js";
import { resolveCloudRun } from "./cloudrun.js";
import type { ControllerConfig, LoadControllerConfigResult } from "./controller-config.js";
import { FIELDS, type FieldName, type Fields } from "./controller-env-vars.js";
import { commaList } from "./field-builders.js";
import { resolveGce } from "./gce.js";
import { resolveGithubApp, warnUnusedAppCredentials } from "./github-app.js";
import { resolveSignIn } from "./job-pages.js";
import { checkJobMinutes } from "./jobs.js";
import { resolveK8s } from "./k8s.js";
import type { Env, RuleContext } from "./rule-context.js";
import { resolveProxyCredentials, warnAboutSandbox } from "./sandbox.js";
import { resolveMetrics } from "./server.js";
import { showValue } from "./show-value.js";
import { resolveSshHosts } from "./ssh.js";

/**
 * Every variable parsed by its own schema, then each area's cross-field rules, then the
 * configuration, or every problem found, together.
 */
export function loadControllerConfig(env: Env): LoadControllerConfigResult {
  const errors: string[] = [];
  const warnings: string[] = [];
  const values: Partial<Fields> = {};

  for (const name of Object.keys(FIELDS) as FieldName[]) {
    const raw = env[name];
    const parsed = FIELDS[name].safeParse(raw);
    if (parsed.success) {
      (values as Record<string, unknown>)[name] = parsed.data;
    } else {
      for (const issue of parsed.error.issues) {
        errors.push(`${name}=${showValue(name, raw ?? "")}: ${issue.message}`);
      }
    }
  }
  const fail = (name: string, message: string) => errors.push(`${name}${env[name] !== undefined ? `=${showValue(name, env[name] ?? "")}` : ""}: ${message}`);
  const ctx: RuleContext = { env, errors, warnings, fail };

  // Each area's rules, in the order their problems are listed in.
  const production = values.NODE_ENV === "production";
  const { appId, privateKey } = resolveGithubApp(values, production, ctx);
  const metrics = resolveMetrics(values, ctx);
  warnUnusedAppCredentials(values, { appId, privateKey }, ctx);
  checkJobMinutes(values, ctx);
  warnAboutSandbox(values, ctx);
  const agentEnv = resolveAgentEnv(values, ctx);
  const { egressCredentials, modelProxy } = resolveProxyCredentials(values, ctx);
  const agentEnvSecrets = resolveAgentEnvSecrets(values, agentEnv, ctx);
  const gce = resolveGce(values, ctx);
  const { sshHostsFile, sshHostLabels } = resolveSshHosts(values, ctx);
  const cloudrun = resolveCloudRun(values, ctx);
  const k8s = resolveK8s(values, ctx);
  const routing = resolveRouting(values, sshHostLabels, ctx);
  const signIn = resolveSignIn(values, ctx);

  if (errors.length > 0) return { ok: false, errors };

  // Every field parsed (no errors), so every value is present.
  const v = values as Fields;
  const config: ControllerConfig = {
    gheProtocol: v.GHE_PROTOCOL,
    port: v.PORT,
    host: v.HOST,
    requestTimeoutSeconds: v.REQUEST_TIMEOUT_SECONDS,
    webhookThread: v.WEBHOOK_THREAD,
    ...(metrics ? { metrics } : {}),
    logLevel: v.LOG_LEVEL,
    production,
    dataDir: resolve(v.DATA_DIR),
    triggerLabel: v.TRIGGER_LABEL,
    maxConcurrentJobs: v.MAX_CONCURRENT_JOBS,
    defaultAgent: v.DEFAULT_AGENT,
    defaultMaxMinutes: v.DEFAULT_MAX_MINUTES,
    maxMinutesCeiling: v.MAX_MINUTES_CEILING,
    leaseSeconds: v.LEASE_SECONDS,
    statusUpdateIntervalSeconds: v.STATUS_UPDATE_INTERVAL_SECONDS,
    schedulerIntervalMs: v.SCHEDULER_INTERVAL_MS,
    localBackend: v.LOCAL_BACKEND,
    localSandbox: v.LOCAL_SANDBOX,
    sandboxRoBinds: v.SANDBOX_RO_BINDS,
    sandboxCeilings: { memoryMb: v.SANDBOX_MAX_MEMORY_MB, maxProcesses: v.SANDBOX_MAX_PROCESSES, maxDiskMb: v.SANDBOX_MAX_DISK_MB },
    dependencyCacheMaxMb: v.DEPENDENCY_CACHE_MAX_MB,
    agentEnv,
    networkDefault: v.NETWORK_DEFAULT,
    egressCredentials,
    networkAllowDefault: v.NETWORK_ALLOW_DEFAULT,
    requiredPermission: v.REQUIRED_PERMISSION,
    gitAuthor: { name: v.GIT_AUTHOR_NAME, email: v.GIT_AUTHOR_EMAIL },
    logRetentionDays: v.LOG_RETENTION_DAYS,
    redeliveryIntervalSeconds: v.REDELIVERY_INTERVAL_SECONDS,
    labelScanMaxAgeDays: v.LABEL_SCAN_MAX_AGE_DAYS,
    logStreamRecheckSeconds: v.LOG_STREAM_RECHECK_SECONDS,
    budgets: { jobUsd: v.BUDGET_JOB_USD, repoMonthlyUsd: v.BUDGET_REPO_MONTHLY_USD, globalHourlyUsd: v.BUDGET_GLOBAL_HOURLY_USD },
    backendOrder: commaList(v.BACKEND_ORDER),
  };
  if (appId !== undefined) config.appId = appId;
  if (privateKey !== undefined) config.privateKey = privateKey;
  if (v.WEBHOOK_SECRET !== undefined) config.webhookSecret = v.WEBHOOK_SECRET;
  if (v.GHE_HOST !== undefined) config.gheHost = v.GHE_HOST;
  if (v.DATABASE_URL !== undefined) config.databaseUrl = v.DATABASE_URL;
  if (v.PUBLIC_URL !== undefined) config.publicUrl = v.PUBLIC_URL.replace(/\/+$/, "");
  if (v.WEBHOOK_PROXY_URL !== undefined) config.webhookProxyUrl = v.WEBHOOK_PROXY_URL;
  if (Object.keys(agentEnvSecrets).length > 0) config.agentEnvSecrets = agentEnvSecrets;
  if (v.AGENT_EXTRA_ARGS !== undefined) config.agentExtraArgs = v.AGENT_EXTRA_ARGS;
  if (modelProxy) config.modelProxy = modelProxy;
  if (gce !== undefined) config.gce = gce;
  if (sshHostsFile !== undefined) config.sshHostsFile = sshHostsFile;
  if (values.PRICES_FILE !== undefined) config.pricesFile = resolve(values.PRICES_FILE);
  if (routing.routingRules) config.routingRules = routing.routingRules;
  if (routing.backendCaps) config.backendCaps = routing.backendCaps;
  if (k8s !== undefined) config.k8s = k8s;
  if (cloudrun !== undefined) config.cloudrun = cloudrun;
  if (signIn !== undefined) config.signIn = signIn;
  if (v.SESSION_SECRET !== undefined) config.sessionSecret = v.SESSION_SECRET;
  return { ok: true, config, warnings };
}
