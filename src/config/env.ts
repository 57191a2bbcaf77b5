import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { AGENT_PRESETS, isAgentPreset, type AgentPreset } from "../agents/presets.js";
import { BACKEND_NAMES } from "../backends/backend-names.js";
import type { NodeProfile, PodIsolation } from "../backends/k8s/build-job.js";
import { readSshHostsFile } from "../backends/ssh/load-ssh-hosts.js";
import { Redactor } from "../redact/redactor.js";
import { HOST_PATTERN } from "./repo-config.js";
import { describeRules, type RoutingRule } from "./routing-rules.js";
import { describeBackendCap, type BackendCap } from "./backend-caps.js";
import { loadRouting } from "./load-routing.js";

/**
 * The controller's configuration, loaded once from an `env` argument (never `process.env` directly,
 * so tests pass their own). Each variable has its own zod schema; all of them are checked, then the
 * cross-field rules, and every problem comes back together, each naming the variable, the bad value
 * (masked when it is a secret) and what would be valid. `.env.example` lists exactly
 * `CONTROLLER_ENV_VARS` (a test checks it).
 */
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
  modelProxy?: { host: string; header: string; variable: string; upstream: string; value: string };
  /** Under `network: allowlist`: more credentials the worker's proxy adds (a registry's token); `value` is a secret. */
  egressCredentials: { host: string; header: string; variable: string; upstream: string; value: string }[];
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

/** The metrics server: its own address, loopback by default, optionally behind a bearer token. */
export interface MetricsConfig {
  host: string;
  port: number;
  /** Scrapers must send `Authorization: Bearer <token>`; a secret. Unset: none is asked for. */
  token?: string;
  /** Label costs with `owner/repo`; off by default, since repository names may be private. */
  repoLabels: boolean;
}

/** The GitHub App's OAuth client (Probot's setup page writes both values to .env). */
export interface SignInConfig {
  clientId: string;
  /** A secret. */
  clientSecret: string;
  /** Base of GitHub's web sign-in (`/login/oauth/authorize`, `/login/oauth/access_token`), no trailing slash. */
  webUrl: string;
  /** REST API base called with a signed-in person's token (`GET /user`, `GET /repos/{owner}/{repo}`). */
  apiUrl: string;
}

/** One VM per job on Google Compute Engine (src/backends/gce/). */
export interface GceConfig {
  project: string;
  /** Tried in this order; the next one when a zone is out of stock or over quota. */
  zones: string[];
  machineType: string;
  /** `projects/<p>/global/images/family/<f>` or `projects/<p>/global/images/<name>`. */
  image: string;
  /** The workers' own service account: no project roles. Never the default compute account. */
  serviceAccount: string;
  spot: boolean;
  onDemandFallback: boolean;
  network: string;
  subnetwork?: string;
  externalIp: boolean;
  networkTags: string[];
  diskGb: number;
  diskType: "pd-balanced" | "pd-ssd" | "pd-standard";
  /** Value of the `agent-work-env` label: what this controller lists and reaps. */
  envLabel: string;
  maxVms: number;
  sshUser: string;
  /** The controller's SSH private key (OpenSSH/PEM); a secret. */
  sshPrivateKey: string;
  bootTimeoutSeconds: number;
  /** Per-boot provisioning for images that are not baked (instance metadata: never a secret). */
  startupScript?: string;
  /** The warm pool: parked VMs per machine type and zone (GCE_POOL); absent or empty means none. */
  pool?: { machineType: string; zone: string; size: number }[];
  /** A parked pool VM older than this is replaced (GCE_POOL_MAX_AGE_HOURS). */
  poolMaxAgeSeconds?: number;
  /** How the pool parks its VMs (GCE_POOL_PARK): suspend, or stop for machine types that cannot suspend. */
  poolPark?: "suspend" | "stop";
  /** How the job's token reaches the VM: on the SSH channel's stdin (the default), or through a per-job Secret Manager secret. */
  tokenDelivery?: "ssh-stdin" | "secret-manager";
}

/** One Kubernetes Job per job (src/backends/k8s/). */
export interface K8sConfig {
  namespace: string;
  /** Absolute path of a kubeconfig file (its current context); unset: the in-cluster service account. */
  kubeconfig?: string;
  /** Worker image: node, git and the worker script at /app/worker/agent-work-worker.mjs (bwrap too for the bwrap sandbox). */
  image: string;
  /** Requests and limits of a pod whose job names no machine type, in Kubernetes quantities. */
  cpu: string;
  memory: string;
  ephemeralStorage: string;
  maxJobs: number;
  ttlSecondsAfterFinished: number;
  runAsUser: number;
  /** `bwrap`: the agent runs under the worker's bubblewrap inside the pod; `none`: the pod is its only boundary. */
  agentSandbox: "bwrap" | "none";
  /** Seccomp/AppArmor profiles, user namespace and RuntimeClass of worker pods (k8s/worker-sandbox/README.md). */
  isolation: PodIsolation;
}

/** One Cloud Run job per job (src/backends/cloudrun/). */
export interface CloudRunConfig {
  project: string;
  region: string;
  /** Worker image in Artifact Registry: node, git and the worker script at /app/worker/agent-work-worker.mjs. */
  image: string;
  /** The identity executions run as; the only reader of each job's input secret. */
  serviceAccount: string;
  /** A task's CPU and memory when the job names no machine type (Cloud Run units: 1, 2Gi). */
  cpu: string;
  memory: string;
  maxJobs: number;
  envLabel: string;
  agentSandbox: "bwrap" | "none";
}

export type LoadControllerConfigResult = { ok: true; config: ControllerConfig; warnings: string[] } | { ok: false; errors: string[] };

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

/** Installation tokens live one hour; a job must finish (and push) inside that. */
const TOKEN_LIFETIME_MINUTES = 60;
const SAFE_MAX_MINUTES = 55;

/** Controller secrets the agent must never receive, whatever AGENT_ENV_PASSTHROUGH says (R12). */
const NEVER_PASSED_TO_AGENT = [
  "APP_ID",
  "PRIVATE_KEY",
  "PRIVATE_KEY_PATH",
  "WEBHOOK_SECRET",
  "DATABASE_URL",
  // GitHub credentials: the agent holds none; the worker pushes with a repo-scoped token of its own.
  "GITHUB_TOKEN",
  "GH_TOKEN",
];

export interface ControllerEnvVar {
  name: string;
  /** One line, for `.env.example` and `--help`. */
  description: string;
  /** As written in the environment; absent when the variable has no default. */
  default?: string;
  secret: boolean;
}

export const CONTROLLER_ENV_VARS: readonly ControllerEnvVar[] = [
  { name: "APP_ID", secret: false, description: "The GitHub App's id. Leave unset to serve the setup page that registers the app from app.yml." },
  {
    name: "PRIVATE_KEY",
    secret: true,
    description: "The GitHub App's private key (PEM); newlines may be written as \\n. Set this or PRIVATE_KEY_PATH, not both.",
  },
  { name: "PRIVATE_KEY_PATH", secret: false, description: "Path of a file holding the GitHub App's private key (PEM), instead of PRIVATE_KEY." },
  { name: "WEBHOOK_SECRET", secret: true, description: "The GitHub App's webhook secret; required with APP_ID; use at least 32 random characters." },
  { name: "GHE_HOST", secret: false, description: "GitHub Enterprise Server host name (e.g. github.example.com); unset for github.com." },
  { name: "GHE_PROTOCOL", secret: false, default: "https", description: "Protocol for GHE_HOST: https or http." },
  {
    name: "PORT",
    secret: false,
    default: "3000",
    description: "Port the webhook server and job pages listen on (/metrics is not served there: see METRICS_PORT).",
  },
  { name: "HOST", secret: false, default: "0.0.0.0", description: "Address the webhook server and job pages bind to." },
  {
    name: "REQUEST_TIMEOUT_SECONDS",
    secret: false,
    default: "15",
    description:
      "Seconds a client may take to send a whole request, body included, before the server answers 408 and closes the connection (GitHub sends a delivery in well under its own 10 s).",
  },
  {
    name: "METRICS_HOST",
    secret: false,
    default: "127.0.0.1",
    description:
      "Address the Prometheus /metrics server binds to; loopback by default, so only this machine can scrape it. Set METRICS_TOKEN before binding it anywhere else.",
  },
  {
    name: "METRICS_PORT",
    secret: false,
    default: "9464",
    description: "Port of the Prometheus /metrics server, which serves nothing else; 0 turns it off. It must differ from PORT.",
  },
  {
    name: "METRICS_TOKEN",
    secret: true,
    description:
      "Bearer token Prometheus must send (Authorization: Bearer <token>) to read /metrics; at least 16 characters, no spaces. Unset: anyone who can reach METRICS_HOST:METRICS_PORT may read it.",
  },
  {
    name: "METRICS_REPO_LABELS",
    secret: false,
    default: "false",
    description:
      "Label cost metrics with repository names (owner/repo): true or false. Off by default, because names of private repositories would reach whoever reads the metrics.",
  },
  { name: "LOG_LEVEL", secret: false, default: "info", description: "Log level: trace, debug, info, warn, error or fatal." },
  { name: "NODE_ENV", secret: false, description: "Set to production in production: then a missing APP_ID is an error instead of the setup page." },
  {
    name: "DATA_DIR",
    secret: false,
    default: "./data",
    description: "Folder for the embedded database and job logs; relative paths are resolved against the working directory.",
  },
  {
    name: "DATABASE_URL",
    secret: true,
    description:
      "PostgreSQL connection URL (postgres://user:password@host:5432/database) to keep the store there instead of SQLite in DATA_DIR; required to run more than one controller replica.",
  },
  {
    name: "PUBLIC_URL",
    secret: false,
    description:
      "Public base URL of this controller, for the job page and the check run's Details link; the setup page registers <PUBLIC_URL>/api/github/webhooks as the app's webhook URL.",
  },
  {
    name: "WEBHOOK_PROXY_URL",
    secret: true,
    description:
      "A smee.io channel (https://smee.io/...) that GitHub delivers webhooks to and the controller forwards from, for a machine GitHub cannot reach; the setup page creates one when PUBLIC_URL is unset.",
  },
  { name: "TRIGGER_LABEL", secret: false, default: "agent-work", description: "The issue label that starts a job." },
  { name: "MAX_CONCURRENT_JOBS", secret: false, default: "2", description: "Jobs that may run at the same time on this controller." },
  {
    name: "DEFAULT_AGENT",
    secret: false,
    default: "claude-code",
    description: "Agent for repositories that do not choose one: opencode, claude-code, aider, codex or command.",
  },
  {
    name: "DEFAULT_MAX_MINUTES",
    secret: false,
    default: "30",
    description: "Minutes a job may run when the repository does not say; at most MAX_MINUTES_CEILING.",
  },
  {
    name: "MAX_MINUTES_CEILING",
    secret: false,
    default: "55",
    description: "The most minutes any repository may ask for; installation tokens live one hour, so keep it at 55 or below.",
  },
  {
    name: "LEASE_SECONDS",
    secret: false,
    default: "60",
    description: "How long a controller's claim on a job lasts without a heartbeat before another may take it over.",
  },
  {
    name: "STATUS_UPDATE_INTERVAL_SECONDS",
    secret: false,
    default: "30",
    description: "Least seconds between two updates of the check run (and of the status comment) while a job runs; each update is a GitHub API call.",
  },
  { name: "SCHEDULER_INTERVAL_MS", secret: false, default: "1000", description: "Milliseconds between scheduler passes that claim queued jobs." },
  {
    name: "LOCAL_BACKEND",
    secret: false,
    default: "true",
    description:
      "Run jobs on this machine (the local backend): true or false. false turns it off, for a controller that only drives ssh, gce or k8s workers (e.g. its own pod in a cluster, where it needs no bubblewrap); repositories then name their backend.",
  },
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
  {
    name: "AGENT_ENV_PASSTHROUGH",
    secret: false,
    description: "Comma-separated names of controller environment variables handed to the agent, e.g. ANTHROPIC_API_KEY.",
  },
  {
    name: "AGENT_EXTRA_ARGS",
    secret: false,
    description:
      'Extra command-line flags per agent preset as JSON, e.g. {"codex":["-c","model_provider=proxy"]} (a provider or proxy a CLI takes no environment variable for); never secrets, argv is readable on the host.',
  },
  {
    name: "REQUIRED_PERMISSION",
    secret: false,
    default: "write",
    description: "Least repository permission a person needs to start or stop work: write, maintain or admin.",
  },
  { name: "GIT_AUTHOR_NAME", secret: false, default: "agent-work[bot]", description: "Author name of the agent's commits." },
  {
    name: "GIT_AUTHOR_EMAIL",
    secret: false,
    default: "agent-work[bot]@users.noreply.github.com",
    description: "Author email of the agent's commits (GitHub links <app-user-id>+<slug>[bot]@users.noreply.github.com to the app).",
  },
  {
    name: "AGENT_ENV_FROM_SECRET_MANAGER",
    secret: false,
    description: "Agent environment read from Secret Manager at start, as NAME=projects/<p>/secrets/<s> pairs separated by commas (latest version).",
  },
  { name: "GCE_PROJECT", secret: false, description: "Google Cloud project for the gce backend (one VM per job); setting it enables the backend." },
  {
    name: "GCE_ZONES",
    secret: false,
    default: "us-central1-a,us-central1-b,us-central1-c,us-central1-f",
    description: "Comma-separated zones for worker VMs, tried in order when one is out of stock or over quota.",
  },
  { name: "GCE_MACHINE_TYPE", secret: false, default: "e2-standard-2", description: "Machine type of worker VMs when the repository does not choose one." },
  { name: "GCE_IMAGE", secret: false, description: "Boot image of worker VMs: projects/<p>/global/images/family/<f> or projects/<p>/global/images/<name>." },
  {
    name: "GCE_WORKER_SERVICE_ACCOUNT",
    secret: false,
    description: "Email of the workers' service account, which holds no roles (never the default compute account).",
  },
  { name: "GCE_SPOT", secret: false, default: "true", description: "Start worker VMs as spot VMs (cheaper, may be preempted): true or false." },
  {
    name: "GCE_ON_DEMAND_FALLBACK",
    secret: false,
    default: "true",
    description: "When no zone has spot capacity, start an on-demand VM instead: true or false.",
  },
  { name: "GCE_NETWORK", secret: false, default: "default", description: "VPC network of worker VMs (a name or global/networks/<name>)." },
  { name: "GCE_SUBNETWORK", secret: false, description: "Subnetwork of worker VMs (regions/<r>/subnetworks/<name>); unset for an auto-mode network." },
  {
    name: "GCE_EXTERNAL_IP",
    secret: false,
    default: "false",
    description: "Give worker VMs an external IP (reach SSH through a firewall that admits only the controller): true or false.",
  },
  {
    name: "GCE_NETWORK_TAGS",
    secret: false,
    default: "agent-work-worker",
    description: "Comma-separated network tags on worker VMs, which the firewall rules target.",
  },
  { name: "GCE_DISK_GB", secret: false, default: "20", description: "Boot disk size of worker VMs in GB." },
  { name: "GCE_DISK_TYPE", secret: false, default: "pd-balanced", description: "Boot disk type of worker VMs: pd-balanced, pd-ssd or pd-standard." },
  {
    name: "GCE_ENV_LABEL",
    secret: false,
    default: "default",
    description: "Value of the agent-work-env label on every VM: a controller lists and reaps only its own.",
  },
  { name: "GCE_MAX_VMS", secret: false, default: "4", description: "Worker VMs that may exist at the same time." },
  { name: "GCE_SSH_USER", secret: false, default: "agent-work", description: "User the controller logs in as on worker VMs (made by the Ansible role)." },
  { name: "GCE_SSH_PRIVATE_KEY_PATH", secret: false, description: "File holding the controller's SSH private key for worker VMs; required with GCE_PROJECT." },
  {
    name: "GCE_BOOT_TIMEOUT_SECONDS",
    secret: false,
    default: "300",
    description: "Seconds a new VM may take until SSH answers before it is deleted and the job fails.",
  },
  {
    name: "GCE_POOL",
    secret: false,
    default: "0",
    description:
      "Warm pool of parked worker VMs: a number (that many of GCE_MACHINE_TYPE in the first of GCE_ZONES), or machine@zone=count pairs separated by commas (e2-standard-2@us-central1-a=2). 0 means no pool.",
  },
  {
    name: "GCE_POOL_MAX_AGE_HOURS",
    secret: false,
    default: "24",
    description: "A parked pool VM older than this is deleted and replaced (a new image is picked up by then).",
  },
  {
    name: "GCE_POOL_PARK",
    secret: false,
    default: "suspend",
    description:
      "How pool VMs wait: suspend (memory kept; resumes in seconds) or stop (for machine types or images that cannot suspend; boots again when taken).",
  },
  {
    name: "GCE_TOKEN_DELIVERY",
    secret: false,
    default: "ssh-stdin",
    description:
      "How a job's token reaches its VM: ssh-stdin (in the worker's input on the SSH channel) or secret-manager (a per-job secret with a TTL that only the workers' service account may read; the worker reads it with the VM's identity).",
  },
  {
    name: "GCE_STARTUP_SCRIPT_PATH",
    secret: false,
    description:
      "File given to every worker VM as its startup script, e.g. ansible/per-boot-startup.sh for an image that is not baked; it must hold no secret.",
  },
  {
    name: "SSH_HOSTS_FILE",
    secret: false,
    description:
      "Path of a YAML or JSON file listing the ssh backend's hosts (address, user, key, slots, labels, host key fingerprint); setting it enables the backend.",
  },
  { name: "K8S_NAMESPACE", secret: false, description: "Kubernetes namespace for the k8s backend's Jobs (one Job per job); setting it enables the backend." },
  {
    name: "K8S_KUBECONFIG",
    secret: false,
    description: "Path of a kubeconfig file (its current context) for the k8s backend; unset means the in-cluster service account.",
  },
  {
    name: "K8S_IMAGE",
    secret: false,
    description: "Container image of worker pods, with node 20+, git and the worker script at /app/worker/agent-work-worker.mjs; required with K8S_NAMESPACE.",
  },
  {
    name: "K8S_CPU",
    secret: false,
    default: "1",
    description: "CPU of a worker pod (request and limit) when the job names no machine type, in Kubernetes units (1, 500m).",
  },
  {
    name: "K8S_MEMORY",
    secret: false,
    default: "2Gi",
    description: "Memory of a worker pod (request and limit) when the job names no machine type, in Kubernetes units (2Gi, 512Mi).",
  },
  {
    name: "K8S_EPHEMERAL_STORAGE",
    secret: false,
    default: "10Gi",
    description: "Scratch disk of a worker pod (request and limit): the clone and the agent's work.",
  },
  { name: "K8S_MAX_JOBS", secret: false, default: "4", description: "Worker Jobs that may exist in the namespace at the same time." },
  {
    name: "K8S_TTL_SECONDS_AFTER_FINISHED",
    secret: false,
    default: "600",
    description: "Seconds Kubernetes keeps a finished worker Job before deleting it, should the controller not have deleted it itself.",
  },
  {
    name: "K8S_RUN_AS_USER",
    secret: false,
    default: "1000",
    description: "Non-root user id worker pods run as; it must be able to read the worker script in the image.",
  },
  {
    name: "K8S_AGENT_SANDBOX",
    secret: false,
    default: "bwrap",
    description:
      "Sandbox for the agent inside a worker pod: bwrap (needs bwrap in the image and user namespaces allowed) or none (the pod is its only boundary).",
  },
  {
    name: "K8S_USER_NAMESPACE",
    secret: false,
    default: "false",
    description:
      "Run worker pods in their own user namespace (hostUsers: false) with an unmasked /proc, which bubblewrap needs inside the pod: true or false. Needs Kubernetes 1.35+ and nodes with user namespaces (k8s/worker-sandbox/README.md).",
  },
  {
    name: "K8S_SECCOMP_PROFILE",
    secret: false,
    default: "RuntimeDefault",
    description:
      "Seccomp profile of worker pods: RuntimeDefault, or localhost/<file> installed in the kubelet's seccomp folder on the nodes (k8s/worker-sandbox/agent-work-bwrap.json lets bubblewrap work).",
  },
  {
    name: "K8S_APPARMOR_PROFILE",
    secret: false,
    description:
      "AppArmor profile of worker pods on AppArmor nodes: RuntimeDefault or localhost/<profile> loaded on the nodes; unset leaves the runtime's default.",
  },
  {
    name: "K8S_RUNTIME_CLASS",
    secret: false,
    description: "RuntimeClass of worker pods, e.g. gvisor (GKE Sandbox); unset uses the cluster's default runtime.",
  },
  {
    name: "CLOUDRUN_PROJECT",
    secret: false,
    description: "Google Cloud project for the cloudrun backend (one Cloud Run job per job); setting it enables the backend.",
  },
  { name: "CLOUDRUN_REGION", secret: false, default: "us-central1", description: "Cloud Run region the cloudrun backend creates its jobs in." },
  {
    name: "CLOUDRUN_IMAGE",
    secret: false,
    description:
      "Worker image for Cloud Run jobs (Artifact Registry), with node 20+, git and the worker script at /app/worker/agent-work-worker.mjs; required with CLOUDRUN_PROJECT.",
  },
  {
    name: "CLOUDRUN_SERVICE_ACCOUNT",
    secret: false,
    description: "Service account Cloud Run executions run as, the only reader of each job's input secret; required with CLOUDRUN_PROJECT.",
  },
  { name: "CLOUDRUN_CPU", secret: false, default: "1", description: "CPU of a Cloud Run task when the job names no machine type: 1, 2, 4, 6 or 8." },
  {
    name: "CLOUDRUN_MEMORY",
    secret: false,
    default: "2Gi",
    description: "Memory of a Cloud Run task when the job names no machine type (512Mi, 2Gi; at most 4Gi per CPU).",
  },
  { name: "CLOUDRUN_MAX_JOBS", secret: false, default: "4", description: "Cloud Run worker jobs that may exist at the same time." },
  {
    name: "CLOUDRUN_ENV_LABEL",
    secret: false,
    default: "default",
    description: "Value of the agent-work-env label on every Cloud Run job and input secret: a controller lists only its own.",
  },
  {
    name: "CLOUDRUN_AGENT_SANDBOX",
    secret: false,
    default: "none",
    description:
      "Sandbox for the agent inside a Cloud Run task: none (Cloud Run's own sandbox is the boundary) or bwrap (only where the image and environment allow user namespaces).",
  },
  {
    name: "GITHUB_CLIENT_ID",
    secret: false,
    description: "The GitHub App's OAuth client id, for signing in to the job pages (Probot's setup page writes it to .env).",
  },
  {
    name: "GITHUB_CLIENT_SECRET",
    secret: true,
    description: "The GitHub App's OAuth client secret; required with GITHUB_CLIENT_ID (Probot's setup page writes it to .env).",
  },
  {
    name: "SESSION_SECRET",
    secret: true,
    description: "Key that signs the job pages' sign-in cookies; at least 32 random characters. Changing it signs everyone out.",
  },
  {
    name: "BUDGET_JOB_USD",
    secret: false,
    default: "1.00",
    description: "Most one job may cost, in USD; it also caps the job's minutes at its machine's rate. Repositories may set lower.",
  },
  {
    name: "BUDGET_REPO_MONTHLY_USD",
    secret: false,
    default: "20.00",
    description: "Most one repository may spend a calendar month (UTC), in USD. Repositories may set lower.",
  },
  {
    name: "BUDGET_GLOBAL_HOURLY_USD",
    secret: false,
    default: "5.00",
    description: "Most the whole controller may spend in one clock hour (UTC), in USD, across all repositories.",
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
  {
    name: "PRICES_FILE",
    secret: false,
    description:
      "A GCE price table refreshed from the Cloud Billing Catalog (npm run prices:refresh -- <file>), used instead of the bundled one; unset uses the bundled table.",
  },
  { name: "LOG_RETENTION_DAYS", secret: false, default: "14", description: "Days each job's full log is kept for its page; older lines are deleted." },
  {
    name: "REDELIVERY_INTERVAL_SECONDS",
    secret: false,
    default: "300",
    description:
      "Seconds between passes that ask GitHub to redeliver webhook deliveries this controller missed (one pass also runs at start); 0 turns the recovery off.",
  },
  {
    name: "LABEL_SCAN_MAX_AGE_DAYS",
    secret: false,
    default: "30",
    description: "Oldest label, in days, that the scan for labelled issues without a job (labels whose delivery GitHub no longer lists) turns into a job.",
  },
  {
    name: "LOG_STREAM_RECHECK_SECONDS",
    secret: false,
    default: "120",
    description:
      "Seconds between checks, while a job page streams its live log, that the viewer may still read the repository (asked of GitHub with their token); a viewer whose access was removed stops receiving lines.",
  },
  {
    name: "GITHUB_OAUTH_URL",
    secret: false,
    description: "Base URL of GitHub's sign-in pages (/login/oauth/authorize); set it only to point sign-in at a fake GitHub in tests.",
  },
  {
    name: "GITHUB_OAUTH_API_URL",
    secret: false,
    description: "REST API base URL called with a signed-in person's token (GET /user, GET /repos/...); set it only for tests.",
  },
];

const SECRET_VARS = new Set(CONTROLLER_ENV_VARS.filter((v) => v.secret).map((v) => v.name));

function defaultOf(name: string): string {
  const value = CONTROLLER_ENV_VARS.find((v) => v.name === name)?.default;
  if (value === undefined) throw new Error(`${name} has no default`);
  return value;
}

function mask(value: string): string {
  return `**** (${value.length} chars)`;
}

/** How a bad value is shown in an error: masked when secret, shortened and quoted otherwise. */
function showValue(name: string, value: string): string {
  if (SECRET_VARS.has(name)) return mask(value);
  const short = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return JSON.stringify(short);
}

/** An empty value (`PORT=` in a .env file) means "use the default", like an absent one. */
function blankToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function integer(name: string, min: number, max: number, why = "") {
  const fallback = Number(defaultOf(name));
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = blankToUndefined(raw);
      if (value === undefined) return fallback;
      const parsed = /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
      if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a whole number from ${min} to ${max}${why} (default ${fallback})` });
        return z.NEVER;
      }
      return parsed;
    });
}

function usd(name: string) {
  const fallback = Number(defaultOf(name));
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = blankToUndefined(raw);
      if (value === undefined) return fallback;
      const parsed = /^\d{1,7}(\.\d{1,6})?$/.test(value) ? Number(value) : Number.NaN;
      if (!Number.isFinite(parsed)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an amount of US dollars such as 2.50 (default ${defaultOf(name)})` });
        return z.NEVER;
      }
      return parsed;
    });
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

function oneOf<const T extends readonly string[]>(name: string, values: T) {
  const fallback = defaultOf(name) as T[number];
  return z
    .string()
    .optional()
    .transform((raw, ctx): T[number] => {
      const value = blankToUndefined(raw);
      if (value === undefined) return fallback;
      if (!(values as readonly string[]).includes(value)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected one of ${values.join(", ")} (default ${fallback})` });
        return z.NEVER;
      }
      return value as T[number];
    });
}

function text(name: string, check?: (value: string) => string | null) {
  const fallback = defaultOf(name);
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = blankToUndefined(raw);
      if (value === undefined) return fallback;
      const problem = check?.(value);
      if (problem) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
        return z.NEVER;
      }
      return value;
    });
}

function optionalText(check?: (value: string) => string | null) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = blankToUndefined(raw);
      if (value === undefined) return undefined;
      const problem = check?.(value);
      if (problem) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
        return z.NEVER;
      }
      return value;
    });
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);
}

function commaList(raw: string | undefined): string[] {
  const value = blankToUndefined(raw);
  if (value === undefined) return [];
  return [
    ...new Set(
      value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== ""),
    ),
  ];
}

function bool(name: string) {
  const fallback = defaultOf(name) === "true";
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = blankToUndefined(raw)?.toLowerCase();
      if (value === undefined) return fallback;
      if (value === "true" || value === "false") return value === "true";
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected true or false (default ${fallback})` });
      return z.NEVER;
    });
}

const GCE_ZONE = /^[a-z]+-[a-z]+\d+-[a-z]$/;
const GCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const GCE_LABEL_VALUE = /^[a-z0-9_-]{1,63}$/;
/** A Kubernetes resource quantity (1, 500m, 2Gi, 1.5G). */
/** A node profile: the runtime's default, or one installed on the nodes (a path below the kubelet's folder, never above it). */
const NODE_PROFILE = /^(RuntimeDefault|localhost\/(?!.*\.\.)[A-Za-z0-9._-][A-Za-z0-9._\/-]*)$/;
const NODE_PROFILE_ADVICE = "expected RuntimeDefault or localhost/<name> (a profile installed on the nodes, such as localhost/agent-work-bwrap.json)";

function nodeProfile(value: string): NodeProfile {
  return value === "RuntimeDefault" ? { type: "RuntimeDefault" } : { type: "Localhost", localhostProfile: value.slice("localhost/".length) };
}

const K8S_QUANTITY = /^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const SECRET_RESOURCE = /^projects\/[^/\s]+\/secrets\/[A-Za-z0-9_-]{1,255}(\/versions\/[A-Za-z0-9_-]+)?$/;

const PEM_PRIVATE_KEY = /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[\s\S]+-----END ([A-Z]+ )?PRIVATE KEY-----/;
const PEM_ADVICE =
  "expected a PEM private key from -----BEGIN RSA PRIVATE KEY----- to -----END RSA PRIVATE KEY----- (the .pem file GitHub gave you; newlines may be written as \\n)";

/** `.env` files and container platforms often flatten a PEM onto one line with literal `\n`. */
function unescapePem(value: string): string {
  return value.replace(/\\r\\n|\\n/g, "\n").trim();
}

function baseUrlProblem(v: string): string | null {
  try {
    const url = new URL(v);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme");
    if (url.username || url.password || url.search || url.hash) return "expected a base URL without credentials, ?query or #fragment";
    return null;
  } catch {
    return "expected an http(s) URL such as https://github.example.com";
  }
}

const FIELDS = {
  APP_ID: optionalText((v) => (/^[1-9]\d{0,15}$/.test(v) ? null : "expected a positive whole number: the App ID on the GitHub App's settings page")),
  PRIVATE_KEY: optionalText((v) => (PEM_PRIVATE_KEY.test(unescapePem(v)) ? null : PEM_ADVICE)),
  PRIVATE_KEY_PATH: optionalText(),
  WEBHOOK_SECRET: optionalText(),
  GHE_HOST: optionalText((v) =>
    /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$/.test(v)
      ? null
      : "expected a host name such as github.example.com, without https:// or a path (set GHE_PROTOCOL for http)",
  ),
  GHE_PROTOCOL: oneOf("GHE_PROTOCOL", ["https", "http"] as const),
  PORT: integer("PORT", 1, 65535),
  HOST: text("HOST", (v) => (/\s/.test(v) ? "expected an address to bind to, such as 0.0.0.0, 127.0.0.1 or ::" : null)),
  REQUEST_TIMEOUT_SECONDS: integer("REQUEST_TIMEOUT_SECONDS", 1, 300),
  METRICS_HOST: text("METRICS_HOST", (v) => (/\s/.test(v) ? "expected an address to bind to, such as 127.0.0.1, :: or 0.0.0.0" : null)),
  METRICS_PORT: integer("METRICS_PORT", 0, 65535, " (0 turns the metrics server off)"),
  // Sent in a header by every scrape: printable ASCII only, and long enough not to be guessed.
  METRICS_TOKEN: optionalText((v) =>
    /^[\x21-\x7e]{16,}$/.test(v) ? null : "expected at least 16 printable characters without spaces (for example `openssl rand -hex 32`)",
  ),
  METRICS_REPO_LABELS: bool("METRICS_REPO_LABELS"),
  LOG_LEVEL: oneOf("LOG_LEVEL", LOG_LEVELS),
  NODE_ENV: optionalText(),
  DATA_DIR: text("DATA_DIR"),
  DATABASE_URL: optionalText((v) => {
    try {
      const url = new URL(v);
      if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw new Error("scheme");
      return null;
    } catch {
      return "expected a PostgreSQL URL such as postgres://agent_work:password@db.example.com:5432/agent_work (unset keeps the embedded SQLite store in DATA_DIR)";
    }
  }),
  PUBLIC_URL: optionalText((v) => {
    try {
      const url = new URL(v);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme");
      if (url.username || url.password) return "expected a URL without credentials in it";
      if (url.search || url.hash) return "expected a base URL without ?query or #fragment, such as https://agent-work.example.com";
      return null;
    } catch {
      return "expected an http(s) URL such as https://agent-work.example.com";
    }
  }),
  WEBHOOK_PROXY_URL: optionalText((v) => {
    try {
      const url = new URL(v);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme");
      return url.pathname.length > 1 ? null : "expected a channel URL such as https://smee.io/AbCdEf123 (https://smee.io/new makes one)";
    } catch {
      return "expected a channel URL such as https://smee.io/AbCdEf123 (https://smee.io/new makes one)";
    }
  }),
  TRIGGER_LABEL: text("TRIGGER_LABEL", (v) => (v.length > 50 ? "expected a GitHub label name of at most 50 characters" : null)),
  MAX_CONCURRENT_JOBS: integer("MAX_CONCURRENT_JOBS", 1, 1000),
  DEFAULT_AGENT: oneOf("DEFAULT_AGENT", AGENT_PRESETS),
  DEFAULT_MAX_MINUTES: integer("DEFAULT_MAX_MINUTES", 1, TOKEN_LIFETIME_MINUTES),
  // A job never outlives the worker token minted at its start (one hour), so tokens are never
  // refreshed: 55 minutes of agent leave the clone, the push and GCE's late maxRunDuration room.
  MAX_MINUTES_CEILING: integer(
    "MAX_MINUTES_CEILING",
    1,
    SAFE_MAX_MINUTES,
    ", because the installation token a job pushes with lives one hour and clone and push need the rest",
  ),
  LEASE_SECONDS: integer("LEASE_SECONDS", 5, 3600),
  STATUS_UPDATE_INTERVAL_SECONDS: integer("STATUS_UPDATE_INTERVAL_SECONDS", 1, 3600),
  SCHEDULER_INTERVAL_MS: integer("SCHEDULER_INTERVAL_MS", 50, 600_000),
  LOCAL_BACKEND: bool("LOCAL_BACKEND"),
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
          code: z.ZodIssueCode.custom,
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
          code: z.ZodIssueCode.custom,
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
          code: z.ZodIssueCode.custom,
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
          code: z.ZodIssueCode.custom,
          message: `expected comma-separated absolute paths; not absolute: ${relative.map((p) => JSON.stringify(p)).join(", ")}`,
        });
        return z.NEVER;
      }
      return paths.map((p) => resolve(p));
    }),
  AGENT_ENV_PASSTHROUGH: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const names = commaList(raw);
      const malformed = names.filter((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n));
      if (malformed.length > 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `expected comma-separated environment variable names such as ANTHROPIC_API_KEY; not a name: ${malformed.map((n) => JSON.stringify(n)).join(", ")}`,
        });
        return z.NEVER;
      }
      return names;
    }),
  AGENT_EXTRA_ARGS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return undefined;
      const problem = (message: string) => {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message });
        return z.NEVER;
      };
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        return problem('expected JSON such as {"codex":["-c","model_provider=proxy"]}');
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
        return problem('expected a JSON object of preset names to lists of flags, such as {"codex":["-c","model_provider=proxy"]}');
      const out: Record<string, string[]> = {};
      for (const [preset, flags] of Object.entries(parsed)) {
        if (!isAgentPreset(preset) || preset === "command")
          return problem(
            `${JSON.stringify(preset)} is not an agent preset with flags of its own; use ${AGENT_PRESETS.filter((p) => p !== "command").join(", ")}`,
          );
        if (!Array.isArray(flags) || !flags.every((f) => typeof f === "string" && f.length > 0 && !f.includes("\0")))
          return problem(`${preset}: expected a list of non-empty strings`);
        out[preset] = flags;
      }
      return out;
    }),
  REQUIRED_PERMISSION: oneOf("REQUIRED_PERMISSION", ["write", "maintain", "admin"] as const),
  GIT_AUTHOR_NAME: text("GIT_AUTHOR_NAME", (v) => (/[<>\n\r\0]/.test(v) ? "expected a name without <, > or line breaks" : null)),
  GIT_AUTHOR_EMAIL: text("GIT_AUTHOR_EMAIL", (v) =>
    /^[^\s<>@]+@[^\s<>@]+$/.test(v) ? null : "expected an email address such as agent-work[bot]@users.noreply.github.com",
  ),
  AGENT_ENV_FROM_SECRET_MANAGER: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const pairs: Record<string, string> = {};
      const bad: string[] = [];
      for (const item of commaList(raw)) {
        const [name, resource] = [item.slice(0, item.indexOf("=")).trim(), item.slice(item.indexOf("=") + 1).trim()];
        if (!item.includes("=") || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || !SECRET_RESOURCE.test(resource)) bad.push(item);
        else pairs[name] = resource;
      }
      if (bad.length > 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `expected NAME=projects/<project>/secrets/<secret> pairs separated by commas; not one: ${bad.map((b) => JSON.stringify(b)).join(", ")}`,
        });
        return z.NEVER;
      }
      return pairs;
    }),
  GCE_PROJECT: optionalText((v) =>
    /^[a-z][-a-z0-9]{4,28}[a-z0-9]$/.test(v)
      ? null
      : "expected a Google Cloud project id such as my-project-123 (6 to 30 lowercase letters, digits and dashes)",
  ),
  GCE_ZONES: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const zones = commaList(blankToUndefined(raw) ?? defaultOf("GCE_ZONES"));
      const bad = zones.filter((zone) => !GCE_ZONE.test(zone));
      if (zones.length === 0 || bad.length > 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `expected comma-separated zones such as us-central1-a,us-central1-b${bad.length > 0 ? `; not a zone: ${bad.map((b) => JSON.stringify(b)).join(", ")}` : ""}`,
        });
        return z.NEVER;
      }
      return zones;
    }),
  GCE_MACHINE_TYPE: text("GCE_MACHINE_TYPE", (v) => (GCE_NAME.test(v) ? null : "expected a machine type such as e2-standard-2")),
  GCE_IMAGE: optionalText((v) =>
    /^projects\/[^/\s]+\/global\/images\/(family\/)?[a-z]([-a-z0-9]*[a-z0-9])?$/.test(v)
      ? null
      : "expected projects/<project>/global/images/family/<family> or projects/<project>/global/images/<image>",
  ),
  GCE_WORKER_SERVICE_ACCOUNT: optionalText((v) => {
    if (!/^[^\s@]+@[^\s@]+\.iam\.gserviceaccount\.com$|^[^\s@]+@developer\.gserviceaccount\.com$/.test(v))
      return "expected a service account email such as agent-work-worker@my-project.iam.gserviceaccount.com";
    // The default compute account usually holds Editor on the project: a hostile agent on the VM would hold it too.
    if (/-compute@developer\.gserviceaccount\.com$/.test(v))
      return "the default compute service account usually has Editor on the project; use the role-less worker account terraform/ creates (agent-work-worker@<project>.iam.gserviceaccount.com)";
    return null;
  }),
  GCE_SPOT: bool("GCE_SPOT"),
  GCE_ON_DEMAND_FALLBACK: bool("GCE_ON_DEMAND_FALLBACK"),
  GCE_NETWORK: text("GCE_NETWORK", (v) =>
    /^(global\/networks\/)?[a-z]([-a-z0-9]*[a-z0-9])?$|^projects\/[^/\s]+\/global\/networks\/[a-z][-a-z0-9]*$/.test(v)
      ? null
      : "expected a network name such as default, or global/networks/<name>",
  ),
  GCE_SUBNETWORK: optionalText((v) =>
    /^(projects\/[^/\s]+\/)?regions\/[a-z]+-[a-z]+\d+\/subnetworks\/[a-z][-a-z0-9]*$/.test(v) ? null : "expected regions/<region>/subnetworks/<name>",
  ),
  GCE_EXTERNAL_IP: bool("GCE_EXTERNAL_IP"),
  GCE_NETWORK_TAGS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const tags = commaList(blankToUndefined(raw) ?? defaultOf("GCE_NETWORK_TAGS"));
      const bad = tags.filter((t) => !GCE_NAME.test(t));
      if (bad.length > 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: `expected comma-separated network tags (lowercase letters, digits, dashes); not a tag: ${bad.map((b) => JSON.stringify(b)).join(", ")}`,
        });
        return z.NEVER;
      }
      return tags;
    }),
  GCE_DISK_GB: integer("GCE_DISK_GB", 10, 65536),
  GCE_DISK_TYPE: oneOf("GCE_DISK_TYPE", ["pd-balanced", "pd-ssd", "pd-standard"] as const),
  GCE_ENV_LABEL: text("GCE_ENV_LABEL", (v) => (GCE_LABEL_VALUE.test(v) ? null : "expected a label value: 1 to 63 lowercase letters, digits, _ or -")),
  GCE_MAX_VMS: integer("GCE_MAX_VMS", 1, 1000),
  GCE_SSH_USER: text("GCE_SSH_USER", (v) => (/^[a-z_][a-z0-9_-]{0,31}$/.test(v) ? null : "expected a Linux user name such as agent-work")),
  GCE_SSH_PRIVATE_KEY_PATH: optionalText(),
  GCE_BOOT_TIMEOUT_SECONDS: integer("GCE_BOOT_TIMEOUT_SECONDS", 30, 3600),
  GCE_STARTUP_SCRIPT_PATH: optionalText(),
  GCE_POOL: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const text = blankToUndefined(raw) ?? "0";
      if (/^\d{1,3}$/.test(text)) return { count: Number(text) };
      const entries: { machineType: string; zone: string; size: number }[] = [];
      for (const part of commaList(text)) {
        const m = /^([a-z][-a-z0-9]{0,61})@([a-z]+-[a-z]+\d+-[a-z])=(\d{1,3})$/.exec(part);
        if (!m) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            message: `expected a number, or machine@zone=count pairs such as e2-standard-2@us-central1-a=2; not understood: ${JSON.stringify(part.slice(0, 80))}`,
          });
          return z.NEVER;
        }
        entries.push({ machineType: m[1]!, zone: m[2]!, size: Number(m[3]) });
      }
      return { entries };
    }),
  GCE_POOL_MAX_AGE_HOURS: integer("GCE_POOL_MAX_AGE_HOURS", 1, 24 * 30),
  GCE_POOL_PARK: oneOf("GCE_POOL_PARK", ["suspend", "stop"] as const),
  GCE_TOKEN_DELIVERY: oneOf("GCE_TOKEN_DELIVERY", ["ssh-stdin", "secret-manager"] as const),
  SSH_HOSTS_FILE: optionalText(),
  K8S_NAMESPACE: optionalText((v) =>
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v) ? null : "expected a namespace name such as agent-work (lowercase letters, digits and dashes, at most 63)",
  ),
  K8S_KUBECONFIG: optionalText(),
  K8S_IMAGE: optionalText((v) => (/^[^\s]+$/.test(v) ? null : "expected an image reference such as ghcr.io/acme/agent-work-worker:1.0, without spaces")),
  K8S_CPU: text("K8S_CPU", (v) => (K8S_QUANTITY.test(v) ? null : "expected a CPU quantity such as 1, 2 or 500m")),
  K8S_MEMORY: text("K8S_MEMORY", (v) => (K8S_QUANTITY.test(v) ? null : "expected a memory quantity such as 2Gi or 512Mi")),
  K8S_EPHEMERAL_STORAGE: text("K8S_EPHEMERAL_STORAGE", (v) => (K8S_QUANTITY.test(v) ? null : "expected a storage quantity such as 10Gi")),
  K8S_MAX_JOBS: integer("K8S_MAX_JOBS", 1, 10_000),
  K8S_TTL_SECONDS_AFTER_FINISHED: integer("K8S_TTL_SECONDS_AFTER_FINISHED", 0, 7 * 24 * 3600),
  K8S_RUN_AS_USER: integer("K8S_RUN_AS_USER", 1, 2_147_483_647, " (0 is root, which worker pods never run as)"),
  K8S_AGENT_SANDBOX: oneOf("K8S_AGENT_SANDBOX", ["bwrap", "none"] as const),
  K8S_USER_NAMESPACE: bool("K8S_USER_NAMESPACE"),
  K8S_SECCOMP_PROFILE: text("K8S_SECCOMP_PROFILE", (v) => (NODE_PROFILE.test(v) ? null : NODE_PROFILE_ADVICE)),
  K8S_APPARMOR_PROFILE: optionalText((v) => (NODE_PROFILE.test(v) ? null : NODE_PROFILE_ADVICE)),
  K8S_RUNTIME_CLASS: optionalText((v) => (/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v) ? null : "expected a RuntimeClass name such as gvisor")),
  CLOUDRUN_PROJECT: optionalText((v) =>
    /^[a-z][-a-z0-9]{4,28}[a-z0-9]$/.test(v)
      ? null
      : "expected a Google Cloud project id such as my-project-123 (6 to 30 lowercase letters, digits and dashes)",
  ),
  CLOUDRUN_REGION: text("CLOUDRUN_REGION", (v) => (/^[a-z]+-[a-z]+\d+$/.test(v) ? null : "expected a region such as us-central1")),
  CLOUDRUN_IMAGE: optionalText((v) =>
    /^[^\s]+$/.test(v) ? null : "expected an image reference such as us-docker.pkg.dev/my-project/agent-work/worker:1.0, without spaces",
  ),
  CLOUDRUN_SERVICE_ACCOUNT: optionalText((v) =>
    /^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$/.test(v)
      ? null
      : "expected a service account email such as agent-work-worker@my-project.iam.gserviceaccount.com",
  ),
  CLOUDRUN_CPU: oneOf("CLOUDRUN_CPU", ["1", "2", "4", "6", "8"] as const),
  CLOUDRUN_MEMORY: text("CLOUDRUN_MEMORY", (v) => (/^\d+(Mi|Gi)$/.test(v) ? null : "expected a memory size such as 512Mi or 2Gi")),
  CLOUDRUN_MAX_JOBS: integer("CLOUDRUN_MAX_JOBS", 1, 10_000),
  CLOUDRUN_ENV_LABEL: text("CLOUDRUN_ENV_LABEL", (v) => (GCE_LABEL_VALUE.test(v) ? null : "expected a label value: 1 to 63 lowercase letters, digits, _ or -")),
  CLOUDRUN_AGENT_SANDBOX: oneOf("CLOUDRUN_AGENT_SANDBOX", ["bwrap", "none"] as const),
  GITHUB_CLIENT_ID: optionalText((v) =>
    /^[A-Za-z0-9._-]{1,100}$/.test(v) ? null : "expected the Client ID from the GitHub App's settings page, such as Iv23liAbCdEf0123456789",
  ),
  GITHUB_CLIENT_SECRET: optionalText(),
  SESSION_SECRET: optionalText((v) =>
    v.length >= 32 ? null : `expected at least 32 random characters (for example \`openssl rand -hex 32\`); a short key lets someone forge a sign-in`,
  ),
  LOG_RETENTION_DAYS: integer("LOG_RETENTION_DAYS", 1, 3650),
  REDELIVERY_INTERVAL_SECONDS: integer("REDELIVERY_INTERVAL_SECONDS", 0, 86_400),
  LABEL_SCAN_MAX_AGE_DAYS: integer("LABEL_SCAN_MAX_AGE_DAYS", 1, 3650),
  LOG_STREAM_RECHECK_SECONDS: integer("LOG_STREAM_RECHECK_SECONDS", 1, 600, " (a stream lasts ten minutes at most, and its reconnect checks again)"),
  BACKEND_ORDER: optionalText((v) => {
    const bad = commaList(v).filter((b) => !(BACKEND_NAMES as readonly string[]).includes(b));
    return bad.length ? `unknown backend ${bad.join(", ")}; expected names from ${BACKEND_NAMES.join(", ")} separated by commas` : null;
  }),
  ROUTING_RULES: optionalText(),
  ROUTING_FILE: optionalText(),
  BACKEND_CAPS: optionalText(),
  PRICES_FILE: optionalText((v) =>
    existsSync(resolve(v)) ? null : "no such file; write one with npm run prices:refresh -- <file>, or unset it to use the bundled prices",
  ),
  BUDGET_JOB_USD: usd("BUDGET_JOB_USD"),
  BUDGET_REPO_MONTHLY_USD: usd("BUDGET_REPO_MONTHLY_USD"),
  BUDGET_GLOBAL_HOURLY_USD: usd("BUDGET_GLOBAL_HOURLY_USD"),
  GITHUB_OAUTH_URL: optionalText(baseUrlProblem),
  GITHUB_OAUTH_API_URL: optionalText(baseUrlProblem),
} satisfies Record<string, z.ZodType<unknown, z.ZodTypeDef, string | undefined>>;

type FieldName = keyof typeof FIELDS;
type Fields = { [K in FieldName]: z.output<(typeof FIELDS)[K]> };

export function loadControllerConfig(env: Record<string, string | undefined>): LoadControllerConfigResult {
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

  // Private key: inline or from a file, not both.
  let privateKey = values.PRIVATE_KEY === undefined ? undefined : unescapePem(values.PRIVATE_KEY);
  if (values.PRIVATE_KEY !== undefined && values.PRIVATE_KEY_PATH !== undefined) {
    fail("PRIVATE_KEY_PATH", "set either PRIVATE_KEY or PRIVATE_KEY_PATH, not both");
  } else if (values.PRIVATE_KEY_PATH !== undefined) {
    const path = resolve(values.PRIVATE_KEY_PATH);
    try {
      const contents = readFileSync(path, "utf8");
      if (PEM_PRIVATE_KEY.test(contents)) privateKey = contents.trim();
      else fail("PRIVATE_KEY_PATH", `${path} does not hold a PEM private key; ${PEM_ADVICE}`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
      fail("PRIVATE_KEY_PATH", `cannot read ${path} (${code}); expected a readable file holding the GitHub App's private key`);
    }
  }

  const appId = values.APP_ID === undefined ? undefined : Number(values.APP_ID);
  const production = values.NODE_ENV === "production";
  if (appId !== undefined) {
    if (values.WEBHOOK_SECRET === undefined) {
      fail("WEBHOOK_SECRET", "required when APP_ID is set: every webhook delivery is verified with it (the secret in the GitHub App's settings)");
    }
    // Raw presence, not parsed values: a malformed key already has its own error.
    if (blankToUndefined(env.PRIVATE_KEY) === undefined && blankToUndefined(env.PRIVATE_KEY_PATH) === undefined) {
      fail("PRIVATE_KEY", "PRIVATE_KEY or PRIVATE_KEY_PATH is required when APP_ID is set: the app signs its requests to GitHub with it");
    }
  } else if (production && !errors.some((e) => e.startsWith("APP_ID"))) {
    fail("APP_ID", "required when NODE_ENV=production; without it only the setup page that registers the app would run");
  }
  if (values.WEBHOOK_SECRET !== undefined && values.WEBHOOK_SECRET.length < 32) {
    warnings.push(
      `WEBHOOK_SECRET is ${values.WEBHOOK_SECRET.length} characters long; use at least 32 random characters (for example \`openssl rand -hex 32\`) and set the same value in the GitHub App's settings`,
    );
  }
  // /metrics has a server of its own: the webhook port faces GitHub (often the internet), and the
  // metrics describe the whole controller.
  let metrics: MetricsConfig | undefined;
  if (values.METRICS_PORT !== undefined && values.METRICS_HOST !== undefined && values.METRICS_REPO_LABELS !== undefined) {
    if (values.METRICS_PORT === 0) {
      if (values.METRICS_TOKEN !== undefined) warnings.push("METRICS_TOKEN is set but METRICS_PORT=0 turns the metrics server off, so it is unused");
    } else if (values.PORT !== undefined && values.METRICS_PORT === values.PORT) {
      fail("METRICS_PORT", `the webhook server already listens on ${values.PORT} (PORT); choose another port for /metrics, or 0 to turn it off`);
    } else {
      metrics = { host: values.METRICS_HOST, port: values.METRICS_PORT, repoLabels: values.METRICS_REPO_LABELS };
      if (values.METRICS_TOKEN !== undefined) metrics.token = values.METRICS_TOKEN;
      else if (!isLoopback(values.METRICS_HOST)) {
        warnings.push(
          `METRICS_HOST=${values.METRICS_HOST} lets anyone who can reach port ${values.METRICS_PORT} read /metrics without a token; set METRICS_TOKEN (and the same bearer token in Prometheus' scrape config) or bind it to 127.0.0.1`,
        );
      }
    }
  }
  if (appId === undefined && (privateKey !== undefined || values.WEBHOOK_SECRET !== undefined)) {
    warnings.push("PRIVATE_KEY / WEBHOOK_SECRET are set but APP_ID is not, so they are unused and the setup page runs instead");
  }

  if (values.DEFAULT_MAX_MINUTES !== undefined && values.MAX_MINUTES_CEILING !== undefined && values.DEFAULT_MAX_MINUTES > values.MAX_MINUTES_CEILING) {
    fail("DEFAULT_MAX_MINUTES", `must not exceed MAX_MINUTES_CEILING (${values.MAX_MINUTES_CEILING})`);
  }

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

  const agentEnv: Record<string, string> = {};
  for (const name of values.AGENT_ENV_PASSTHROUGH ?? []) {
    if (NEVER_PASSED_TO_AGENT.includes(name)) {
      fail("AGENT_ENV_PASSTHROUGH", `${name} must never reach the agent; remove it (the agent may not receive ${NEVER_PASSED_TO_AGENT.join(", ")})`);
    } else if (env[name] === undefined || env[name] === "") {
      fail("AGENT_ENV_PASSTHROUGH", `${name} is listed but not set in the controller's environment; set it or remove it from the list`);
    } else {
      agentEnv[name] = env[name];
    }
  }

  const egressCredentials: ControllerConfig["egressCredentials"] = [];
  for (const rule of values.EGRESS_CREDENTIALS ?? []) {
    const value = env[rule.variable];
    if (value === undefined || value === "") fail("EGRESS_CREDENTIALS", `${rule.variable} is named but not set in the controller's environment`);
    else if (NEVER_PASSED_TO_AGENT.includes(rule.variable)) fail("EGRESS_CREDENTIALS", `${rule.variable} is one of the controller's own secrets`);
    else egressCredentials.push({ ...rule, value });
  }
  let modelProxy: ControllerConfig["modelProxy"];
  if (values.MODEL_PROXY) {
    const value = env[values.MODEL_PROXY.variable];
    if (value === undefined || value === "") fail("MODEL_PROXY", `${values.MODEL_PROXY.variable} is named but not set in the controller's environment`);
    else if (NEVER_PASSED_TO_AGENT.includes(values.MODEL_PROXY.variable))
      fail("MODEL_PROXY", `${values.MODEL_PROXY.variable} is one of the controller's own secrets`);
    else modelProxy = { ...values.MODEL_PROXY, value };
  }

  const agentEnvSecrets = values.AGENT_ENV_FROM_SECRET_MANAGER ?? {};
  for (const name of Object.keys(agentEnvSecrets)) {
    if (NEVER_PASSED_TO_AGENT.includes(name)) fail("AGENT_ENV_FROM_SECRET_MANAGER", `${name} must never reach the agent; remove it`);
    else if (name in agentEnv) fail("AGENT_ENV_FROM_SECRET_MANAGER", `${name} is also in AGENT_ENV_PASSTHROUGH; give it one source`);
  }

  let gce: GceConfig | undefined;
  const project = values.GCE_PROJECT;
  if (project !== undefined) {
    let sshPrivateKey: string | undefined;
    if (values.GCE_SSH_PRIVATE_KEY_PATH === undefined) {
      fail(
        "GCE_SSH_PRIVATE_KEY_PATH",
        "required with GCE_PROJECT: the controller logs in to each worker VM with this key (its public half is baked into the image by ansible/)",
      );
    } else {
      const path = resolve(values.GCE_SSH_PRIVATE_KEY_PATH);
      try {
        const contents = readFileSync(path, "utf8");
        if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(contents)) sshPrivateKey = contents;
        else
          fail(
            "GCE_SSH_PRIVATE_KEY_PATH",
            `${path} does not hold an SSH private key (expected -----BEGIN OPENSSH PRIVATE KEY-----, e.g. from ssh-keygen -t ed25519)`,
          );
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
        fail("GCE_SSH_PRIVATE_KEY_PATH", `cannot read ${path} (${code}); expected a readable file holding the controller's SSH private key`);
      }
    }
    if (sshPrivateKey !== undefined && values.GCE_ZONES && values.GCE_NETWORK_TAGS && values.GCE_MACHINE_TYPE) {
      gce = {
        project,
        zones: values.GCE_ZONES,
        machineType: values.GCE_MACHINE_TYPE,
        image: values.GCE_IMAGE ?? `projects/${project}/global/images/family/agent-work-worker`,
        serviceAccount: values.GCE_WORKER_SERVICE_ACCOUNT ?? `agent-work-worker@${project}.iam.gserviceaccount.com`,
        spot: values.GCE_SPOT ?? true,
        onDemandFallback: values.GCE_ON_DEMAND_FALLBACK ?? true,
        network: values.GCE_NETWORK ?? "default",
        externalIp: values.GCE_EXTERNAL_IP ?? false,
        networkTags: values.GCE_NETWORK_TAGS,
        diskGb: values.GCE_DISK_GB ?? 20,
        diskType: values.GCE_DISK_TYPE ?? "pd-balanced",
        envLabel: values.GCE_ENV_LABEL ?? "default",
        maxVms: values.GCE_MAX_VMS ?? 4,
        sshUser: values.GCE_SSH_USER ?? "agent-work",
        sshPrivateKey,
        bootTimeoutSeconds: values.GCE_BOOT_TIMEOUT_SECONDS ?? 300,
        ...(values.GCE_TOKEN_DELIVERY === "secret-manager" ? { tokenDelivery: "secret-manager" as const } : {}),
      };
      const poolSpec = values.GCE_POOL;
      const count = poolSpec?.count ?? 0;
      const pool: { machineType: string; zone: string; size: number }[] =
        poolSpec?.entries ?? (count > 0 ? [{ machineType: gce.machineType, zone: gce.zones[0]!, size: count }] : []);
      const outside = pool.filter((e) => !gce!.zones.includes(e.zone));
      if (outside.length > 0) fail("GCE_POOL", `zone ${outside.map((e) => e.zone).join(", ")} is not in GCE_ZONES; a pool VM must be where jobs may run`);
      else if (pool.length > 0) {
        gce.pool = pool;
        gce.poolMaxAgeSeconds = (values.GCE_POOL_MAX_AGE_HOURS ?? 24) * 3600;
        gce.poolPark = values.GCE_POOL_PARK ?? "suspend";
      }
      if (values.GCE_STARTUP_SCRIPT_PATH !== undefined) {
        const path = resolve(values.GCE_STARTUP_SCRIPT_PATH);
        try {
          const script = readFileSync(path, "utf8");
          // Instance metadata is readable by everything on the VM, the agent included.
          if (new Redactor([]).redact(script) !== script)
            fail(
              "GCE_STARTUP_SCRIPT_PATH",
              `${path} holds something shaped like a credential; a startup script is instance metadata, which the agent can read`,
            );
          else gce.startupScript = script;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
          fail("GCE_STARTUP_SCRIPT_PATH", `cannot read ${path} (${code})`);
        }
      }
      if (values.GCE_SUBNETWORK !== undefined) gce.subnetwork = values.GCE_SUBNETWORK;
      if (!gce.spot && env.GCE_ON_DEMAND_FALLBACK !== undefined && env.GCE_ON_DEMAND_FALLBACK.trim() !== "") {
        warnings.push("GCE_ON_DEMAND_FALLBACK is set but GCE_SPOT=false: every VM is on-demand already, so there is nothing to fall back from");
      }
      if (gce.externalIp) {
        warnings.push(
          "GCE_EXTERNAL_IP=true: worker VMs get a public address; make sure the firewall admits SSH only from the controller (terraform/ variable controller_cidr)",
        );
      }
    }
  } else {
    const stray = Object.keys(env).filter((name) => name.startsWith("GCE_") && name !== "GCE_PROJECT" && blankToUndefined(env[name]) !== undefined);
    if (stray.length > 0)
      warnings.push(
        `${stray.join(", ")} ${stray.length === 1 ? "is" : "are"} set but GCE_PROJECT is not, so the gce backend is off and ${stray.length === 1 ? "it is" : "they are"} unused`,
      );
  }

  const sshHostsFile = values.SSH_HOSTS_FILE === undefined ? undefined : resolve(values.SSH_HOSTS_FILE);
  let sshHostLabels: string[][] | undefined;
  if (sshHostsFile !== undefined) {
    const hosts = readSshHostsFile(sshHostsFile);
    if (!hosts.ok) for (const problem of hosts.errors) fail("SSH_HOSTS_FILE", problem);
    else sshHostLabels = hosts.hosts.map((h) => h.labels);
  }

  let cloudrun: CloudRunConfig | undefined;
  if (values.CLOUDRUN_PROJECT !== undefined) {
    if (values.CLOUDRUN_IMAGE === undefined)
      fail(
        "CLOUDRUN_IMAGE",
        'required with CLOUDRUN_PROJECT: the worker image, with node 20+, git and the worker script at /app/worker/agent-work-worker.mjs (see "Run on Cloud Run" in README.md)',
      );
    if (values.CLOUDRUN_SERVICE_ACCOUNT === undefined)
      fail(
        "CLOUDRUN_SERVICE_ACCOUNT",
        'required with CLOUDRUN_PROJECT: the identity executions run as, which alone may read each job\'s input secret (see "Run on Cloud Run" in README.md)',
      );
    if (values.CLOUDRUN_IMAGE !== undefined && values.CLOUDRUN_SERVICE_ACCOUNT !== undefined) {
      cloudrun = {
        project: values.CLOUDRUN_PROJECT,
        region: values.CLOUDRUN_REGION ?? "us-central1",
        image: values.CLOUDRUN_IMAGE,
        serviceAccount: values.CLOUDRUN_SERVICE_ACCOUNT,
        cpu: values.CLOUDRUN_CPU ?? "1",
        memory: values.CLOUDRUN_MEMORY ?? "2Gi",
        maxJobs: values.CLOUDRUN_MAX_JOBS ?? 4,
        envLabel: values.CLOUDRUN_ENV_LABEL ?? "default",
        agentSandbox: values.CLOUDRUN_AGENT_SANDBOX ?? "none",
      };
    }
  } else {
    const stray = Object.keys(env).filter((name) => name.startsWith("CLOUDRUN_") && blankToUndefined(env[name]) !== undefined);
    if (stray.length > 0)
      warnings.push(
        `${stray.join(", ")} ${stray.length === 1 ? "is" : "are"} set but CLOUDRUN_PROJECT is not, so the cloudrun backend is off and ${stray.length === 1 ? "it is" : "they are"} unused`,
      );
  }

  let k8s: K8sConfig | undefined;
  if (values.K8S_NAMESPACE !== undefined) {
    let kubeconfig: string | undefined;
    if (values.K8S_KUBECONFIG !== undefined) {
      kubeconfig = resolve(values.K8S_KUBECONFIG);
      try {
        readFileSync(kubeconfig, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
        fail(
          "K8S_KUBECONFIG",
          `cannot read ${kubeconfig} (${code}); expected a kubeconfig file, or leave it unset when the controller runs inside the cluster`,
        );
      }
    }
    if (values.K8S_IMAGE === undefined) {
      fail(
        "K8S_IMAGE",
        'required with K8S_NAMESPACE: the worker image, with node 20+, git and the worker script at /app/worker/agent-work-worker.mjs (see "Run on Kubernetes" in README.md)',
      );
    } else if (values.K8S_CPU && values.K8S_MEMORY && values.K8S_EPHEMERAL_STORAGE && values.K8S_AGENT_SANDBOX) {
      k8s = {
        namespace: values.K8S_NAMESPACE,
        image: values.K8S_IMAGE,
        cpu: values.K8S_CPU,
        memory: values.K8S_MEMORY,
        ephemeralStorage: values.K8S_EPHEMERAL_STORAGE,
        maxJobs: values.K8S_MAX_JOBS ?? 4,
        ttlSecondsAfterFinished: values.K8S_TTL_SECONDS_AFTER_FINISHED ?? 600,
        runAsUser: values.K8S_RUN_AS_USER ?? 1000,
        agentSandbox: values.K8S_AGENT_SANDBOX,
        isolation: {
          userNamespace: values.K8S_USER_NAMESPACE ?? false,
          seccompProfile: nodeProfile(values.K8S_SECCOMP_PROFILE ?? "RuntimeDefault"),
          ...(values.K8S_APPARMOR_PROFILE !== undefined ? { appArmorProfile: nodeProfile(values.K8S_APPARMOR_PROFILE) } : {}),
          ...(values.K8S_RUNTIME_CLASS !== undefined ? { runtimeClassName: values.K8S_RUNTIME_CLASS } : {}),
        },
      };
      if (kubeconfig !== undefined) k8s.kubeconfig = kubeconfig;
      if (k8s.agentSandbox === "bwrap" && (!k8s.isolation.userNamespace || k8s.isolation.seccompProfile.type === "RuntimeDefault")) {
        warnings.push(
          "K8S_AGENT_SANDBOX=bwrap with " +
            (k8s.isolation.userNamespace
              ? "RuntimeDefault seccomp"
              : k8s.isolation.seccompProfile.type === "RuntimeDefault"
                ? "RuntimeDefault seccomp and no user namespace"
                : "no user namespace") +
            ": bubblewrap cannot build the agent's sandbox in a worker pod (the runtime refuses its namespaces and its fresh /proc), so every k8s job would fail at the agent step. " +
            "Set K8S_USER_NAMESPACE=true and K8S_SECCOMP_PROFILE=localhost/agent-work-bwrap.json (Kubernetes 1.35+; k8s/worker-sandbox/README.md), " +
            "or K8S_AGENT_SANDBOX=none with a stronger pod boundary such as K8S_RUNTIME_CLASS=gvisor",
        );
      }
      if (!/@sha256:[0-9a-f]{64}$/.test(k8s.image)) {
        warnings.push(`K8S_IMAGE=${k8s.image} is not pinned by digest: whoever moves the tag changes what every job runs; name it as <image>@sha256:<digest>`);
      }
      if (k8s.agentSandbox === "none") {
        warnings.push(
          "K8S_AGENT_SANDBOX=none: inside a worker pod the agent runs as the same user as the worker script and can read the job's mounted input, which holds the repository token; the pod, not bubblewrap, is its boundary",
        );
      }
    }
  } else {
    const stray = Object.keys(env).filter((name) => name.startsWith("K8S_") && blankToUndefined(env[name]) !== undefined);
    if (stray.length > 0)
      warnings.push(
        `${stray.join(", ")} ${stray.length === 1 ? "is" : "are"} set but K8S_NAMESPACE is not, so the k8s backend is off and ${stray.length === 1 ? "it is" : "they are"} unused`,
      );
  }

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

  // Sign-in to the job pages: the client id and secret come as a pair.
  let signIn: SignInConfig | undefined;
  if (values.GITHUB_CLIENT_ID !== undefined && values.GITHUB_CLIENT_SECRET === undefined) {
    fail(
      "GITHUB_CLIENT_SECRET",
      "required with GITHUB_CLIENT_ID: the sign-in code is exchanged with both (Client secrets in the GitHub App's settings; Probot's setup page writes it)",
    );
  } else if (values.GITHUB_CLIENT_ID === undefined && values.GITHUB_CLIENT_SECRET !== undefined) {
    fail("GITHUB_CLIENT_ID", "required with GITHUB_CLIENT_SECRET (the Client ID on the GitHub App's settings page)");
  } else if (values.GITHUB_CLIENT_ID !== undefined && values.GITHUB_CLIENT_SECRET !== undefined) {
    const protocol = values.GHE_PROTOCOL ?? "https";
    const host = values.GHE_HOST;
    signIn = {
      clientId: values.GITHUB_CLIENT_ID,
      clientSecret: values.GITHUB_CLIENT_SECRET,
      webUrl: (values.GITHUB_OAUTH_URL ?? (host ? `${protocol}://${host}` : "https://github.com")).replace(/\/+$/, ""),
      apiUrl: (values.GITHUB_OAUTH_API_URL ?? (host ? `${protocol}://${host}/api/v3` : "https://api.github.com")).replace(/\/+$/, ""),
    };
  } else if (values.PUBLIC_URL !== undefined) {
    warnings.push(
      "PUBLIC_URL is set but GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET are not: the check run's Details link leads to a job page nobody can sign in to; copy both from the GitHub App's settings (Probot's setup page writes them to .env)",
    );
  }

  if (errors.length > 0) return { ok: false, errors };

  // Every field parsed (no errors), so every value is present.
  const v = values as Fields;
  const config: ControllerConfig = {
    gheProtocol: v.GHE_PROTOCOL,
    port: v.PORT,
    host: v.HOST,
    requestTimeoutSeconds: v.REQUEST_TIMEOUT_SECONDS,
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

/** Every secret value in the configuration, for the redactor. */
export function secretValues(config: ControllerConfig): string[] {
  return [
    config.privateKey,
    config.webhookSecret,
    config.gce?.sshPrivateKey,
    config.signIn?.clientSecret,
    config.sessionSecret,
    config.metrics?.token,
    config.databaseUrl,
    config.webhookProxyUrl,
    // The password alone too: a driver's error may quote it without the rest of the URL.
    databasePassword(config.databaseUrl),
    ...Object.values(config.agentEnv),
    config.modelProxy?.value,
    ...(config.egressCredentials ?? []).map((c) => c.value),
  ].filter((value): value is string => typeof value === "string" && value !== "");
}

function databasePassword(databaseUrl: string | undefined): string | undefined {
  if (databaseUrl === undefined) return undefined;
  try {
    return decodeURIComponent(new URL(databaseUrl).password) || undefined;
  } catch {
    return undefined;
  }
}

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
