import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { Redactor } from "../../redact/redactor.js";
import {
  blankToUndefined,
  commaList,
  fieldBuilders,
  optionalText,
  type ControllerEnvVar,
  type EnvField,
  type FieldValues,
  type VarName,
} from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** The gce backend: one VM per job; GCE_PROJECT turns it on. */
export const GCE_VARS = [
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
    name: "GCE_POOL_HEDGE",
    secret: false,
    default: "true",
    description:
      "Hedge a pool start: resume two parked VMs, give the job the first to answer SSH and park the other again (faster starts at their slow end; the other VM's minute or two is billed to the job). Only when no other start is under way: true or false.",
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
] as const satisfies readonly ControllerEnvVar[];

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
  /** Whether a pool start resumes two VMs and keeps the first to answer (GCE_POOL_HEDGE). */
  poolHedge?: boolean;
  /** How the job's token reaches the VM: on the SSH channel's stdin (the default), or through a per-job Secret Manager secret. */
  tokenDelivery?: "ssh-stdin" | "secret-manager";
}

const GCE_ZONE = /^[a-z]+-[a-z]+\d+-[a-z]$/;
const GCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A label value, shared with the cloudrun backend's CLOUDRUN_ENV_LABEL. */
export const GCE_LABEL_VALUE = /^[a-z0-9_-]{1,63}$/;

const { defaultOf, integer, oneOf, text, bool } = fieldBuilders(GCE_VARS);

export const GCE_FIELDS = {
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
          code: "custom",
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
          code: "custom",
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
            code: "custom",
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
  GCE_POOL_HEDGE: bool("GCE_POOL_HEDGE"),
  GCE_TOKEN_DELIVERY: oneOf("GCE_TOKEN_DELIVERY", ["ssh-stdin", "secret-manager"] as const),
} satisfies Record<VarName<typeof GCE_VARS>, EnvField>;

type GceValues = Partial<FieldValues<typeof GCE_FIELDS>>;

/** The gce backend when GCE_PROJECT is set (its SSH key read, its pool and startup script checked); else a warning for GCE_ variables set in vain. */
export function resolveGce(values: GceValues, ctx: RuleContext): GceConfig | undefined {
  const { env, warnings, fail } = ctx;
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
        gce.poolHedge = values.GCE_POOL_HEDGE ?? true;
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
  return gce;
}
