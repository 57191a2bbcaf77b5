import type { AgentPreset } from "../../agents/presets.js";
import type { BackendCap } from "../backend-caps.js";
import type { RoutingRule } from "../routing-rules.js";
import type { CloudRunConfig } from "./cloudrun.js";
import type { GceConfig } from "./gce.js";
import type { SignInConfig } from "./job-pages.js";
import type { K8sConfig } from "./k8s.js";
import type { ProxyCredential } from "./sandbox.js";
import type { LogLevel, MetricsConfig } from "./server.js";

/** The controller's configuration, as `loadControllerConfig` builds it from the environment. */
export interface ControllerConfig {
  appId?: number;
  privateKey?: string;
  webhookSecret?: string;
  gheHost?: string;
  gheProtocol: "https" | "http";
  port: number;
  host: string;
  /** How long a client may take to send a whole request (webhook body included) before it is closed. */
  requestTimeoutSeconds: number;
  /** Webhooks received on a thread of their own (src/ingress/ingress-thread.ts); job pages are passed on to the main thread. */
  webhookThread: boolean;
  /** Where Prometheus scrapes `/metrics`: never the webhook port. Absent when METRICS_PORT=0. */
  metrics?: MetricsConfig;
  logLevel: LogLevel;
  production: boolean;
  /** Absolute. */
  dataDir: string;
  /** `postgres://…`: the store is this PostgreSQL database instead of SQLite in `dataDir`. A secret (it may hold a password). */
  databaseUrl?: string;
  /** Base URL of this controller as GitHub users reach it, without a trailing slash. */
  publicUrl?: string;
  /** A smee.io channel GitHub delivers webhooks to, forwarded from there to this controller (development). A secret: whoever knows it reads every delivery. */
  webhookProxyUrl?: string;
  triggerLabel: string;
  maxConcurrentJobs: number;
  defaultAgent: AgentPreset;
  defaultMaxMinutes: number;
  maxMinutesCeiling: number;
  leaseSeconds: number;
  statusUpdateIntervalSeconds: number;
  schedulerIntervalMs: number;
  /** false: this controller runs no agent itself (no local backend), e.g. as a pod in a cluster. */
  localBackend: boolean;
  /** `none` is the explicit opt-out: the agent runs unsandboxed, and every job's log says so. */
  localSandbox: "bwrap" | "none";
  /** Absolute paths the sandboxed agent may read. */
  sandboxRoBinds: string[];
  /** The most a sandboxed agent may use; a repository may ask for less, never more. */
  sandboxCeilings: { memoryMb: number; maxProcesses: number; maxDiskMb: number };
  /** MB all repositories' dependency caches on one worker host may hold together (0: no cache). */
  dependencyCacheMaxMb: number;
  /** Environment handed to the agent, name → value. The values are secrets. */
  agentEnv: Record<string, string>;
  /** The agent's network for a repository whose config names none. */
  networkDefault: "full" | "allowlist" | "none";
  /** Host patterns every agent under `network: allowlist` may reach. */
  networkAllowDefault: string[];
  /** Under `network: allowlist`: the credential the worker's proxy adds for the model's host (`value` is a secret). */
  modelProxy?: ProxyCredential;
  /** Under `network: allowlist`: more credentials the worker's proxy adds (a registry's token); `value` is a secret. */
  egressCredentials: ProxyCredential[];
  requiredPermission: "write" | "maintain" | "admin";
  gitAuthor: { name: string; email: string };
  /** Agent environment read from Secret Manager at start: variable name → secret resource. */
  agentEnvSecrets?: Record<string, string>;
  /** The operator's extra flags per agent preset (AGENT_EXTRA_ARGS), placed before the prompt. */
  agentExtraArgs?: Partial<Record<string, string[]>>;
  /** The gce backend; present when GCE_PROJECT is set. */
  gce?: GceConfig;
  /** Absolute path of the ssh backend's hosts file (validated here; read with loadSshHosts()). */
  sshHostsFile?: string;
  /** A price table written by scripts/refresh-prices.ts, used instead of the bundled one. */
  pricesFile?: string;
  /** Where a job goes when its own backend is full or down, in order; empty: it waits instead. */
  backendOrder: string[];
  /** ROUTING_RULES or ROUTING_FILE: first match picks the backend of a job that names none (src/config/routing-rules.ts). */
  routingRules?: RoutingRule[];
  /** BACKEND_CAPS: per backend, jobs at once and US dollars an hour. */
  backendCaps?: Record<string, BackendCap>;
  /** The k8s backend; present when K8S_NAMESPACE is set. */
  k8s?: K8sConfig;
  /** The cloudrun backend; present when CLOUDRUN_PROJECT is set. */
  cloudrun?: CloudRunConfig;
  /** Sign-in to the job pages with GitHub's OAuth web flow; present when GITHUB_CLIENT_ID is set. */
  signIn?: SignInConfig;
  /** Key for the job pages' session cookies; unset means one derived from the App's private key. */
  sessionSecret?: string;
  /** Days a job's full log is kept for its page; older lines are deleted. */
  logRetentionDays: number;
  /** Seconds between delivery recovery passes (src/deliveries/); 0: none, not even at start. */
  redeliveryIntervalSeconds: number;
  /** The label scan turns no label older than this into a job. */
  labelScanMaxAgeDays: number;
  /** How often an open live log stream asks GitHub again whether its viewer may still read the repository. */
  logStreamRecheckSeconds: number;
  /** The most any job, any repository a month, and the whole controller an hour may spend (USD). */
  budgets: { jobUsd: number; repoMonthlyUsd: number; globalHourlyUsd: number };
}

export type LoadControllerConfigResult = { ok: true; config: ControllerConfig; warnings: string[] } | { ok: false; errors: string[] };
