import { blankToUndefined, fieldBuilders, optionalText, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import { GCE_LABEL_VALUE } from "./gce.js";
import type { RuleContext } from "./rule-context.js";

/** The cloudrun backend: one Cloud Run job per job; CLOUDRUN_PROJECT turns it on. */
export const CLOUDRUN_VARS = [
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
] as const satisfies readonly ControllerEnvVar[];

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

const { integer, oneOf, text } = fieldBuilders(CLOUDRUN_VARS);

export const CLOUDRUN_FIELDS = {
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
} satisfies Record<VarName<typeof CLOUDRUN_VARS>, EnvField>;

type CloudRunValues = Partial<FieldValues<typeof CLOUDRUN_FIELDS>>;

/** The cloudrun backend when CLOUDRUN_PROJECT is set, with the image and identity it needs; else a warning for CLOUDRUN_ variables set in vain. */
export function resolveCloudRun(values: CloudRunValues, ctx: RuleContext): CloudRunConfig | undefined {
  const { env, warnings, fail } = ctx;
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
  return cloudrun;
}
