/**
 * The `instances.insert` body for one job's VM: a pure function of the settings and the job, so a
 * test can assert every field that keeps the VM cheap, short-lived and closed.
 *
 * - `scheduling.maxRunDuration` + `instanceTerminationAction: DELETE`: GCE deletes the VM on its
 *   own when the job's time is up, even if the controller is gone (it may fire up to 30 s late).
 * - Spot by default; `automaticRestart: false` so a crashed job VM never comes back on its own.
 * - Shielded VM, a role-less service account, no external IP unless asked for.
 * - Metadata holds switches only (OS Login, no project-wide SSH keys, guest attributes for the
 *   host key) and never a secret: anything on the VM can read metadata, the agent included.
 */
import { Redactor } from "../../redact/redactor.js";
import type { GceInstance } from "./compute-api.js";
import { LABEL, labelValue } from "./gce-names.js";

export type ProvisioningModel = "SPOT" | "STANDARD";

/** What every VM of this backend shares (from the gce configuration). */
export interface InstanceSettings {
  machineType: string;
  /** `projects/<p>/global/images/family/<f>` or `projects/<p>/global/images/<name>`. */
  image: string;
  serviceAccount: string;
  network: string;
  subnetwork?: string;
  externalIp: boolean;
  networkTags: string[];
  diskGb: number;
  diskType: string;
  envLabel: string;
  /** Non-secret per-boot provisioning (e.g. ansible/per-boot-startup.sh) for images not baked. */
  startupScript?: string;
}

/** What differs per job and per placement attempt. */
export interface InstancePlan {
  name: string;
  jobId: string;
  repoFullName: string;
  zone: string;
  provisioningModel: ProvisioningModel;
  /** The dead-man switch, in seconds (GCE accepts 30 s to 120 days). */
  maxRunSeconds: number;
  /** Epoch ms, for the expires-at label. */
  now: number;
  machineType?: string;
}

export const MIN_RUN_SECONDS = 30;
export const MAX_RUN_SECONDS = 120 * 24 * 3600;

/** Pattern-only redactor: anything it would change in metadata looks like a credential. */
const secretShapes = new Redactor([]);

export function labelsFor(plan: Pick<InstancePlan, "jobId" | "repoFullName" | "maxRunSeconds" | "now">, envLabel: string): Record<string, string> {
  return {
    [LABEL.job]: labelValue(plan.jobId),
    [LABEL.repo]: labelValue(plan.repoFullName.replace("/", "_")),
    [LABEL.expiresAt]: String(Math.ceil(plan.now / 1000) + plan.maxRunSeconds),
    [LABEL.env]: labelValue(envLabel),
  };
}

function networkPath(network: string): string {
  return network.includes("/") ? network : `global/networks/${network}`;
}

export function buildInstanceBody(settings: InstanceSettings, plan: InstancePlan): GceInstance {
  if (!Number.isInteger(plan.maxRunSeconds) || plan.maxRunSeconds < MIN_RUN_SECONDS || plan.maxRunSeconds > MAX_RUN_SECONDS) {
    throw new RangeError(`maxRunDuration must be a whole number of seconds from ${MIN_RUN_SECONDS} to ${MAX_RUN_SECONDS}; got ${plan.maxRunSeconds}`);
  }
  const labels = labelsFor(plan, settings.envLabel);
  const spot = plan.provisioningModel === "SPOT";
  const metadata: { key: string; value: string }[] = [
    // The controller logs in with its own key baked into the image; nobody else's keys apply.
    { key: "enable-oslogin", value: "TRUE" },
    { key: "block-project-ssh-keys", value: "TRUE" },
    // The guest agent publishes the SSH host keys here, so the controller can pin them.
    { key: "enable-guest-attributes", value: "TRUE" },
    { key: "serial-port-enable", value: "FALSE" },
  ];
  if (settings.startupScript) metadata.push({ key: "startup-script", value: settings.startupScript });
  for (const item of metadata) {
    if (secretShapes.redact(item.value) !== item.value) {
      throw new Error(`refusing to put a credential into instance metadata (${item.key}): anything on the VM, the agent included, can read metadata`);
    }
  }

  const nic: NonNullable<GceInstance["networkInterfaces"]>[number] = { network: networkPath(settings.network) };
  if (settings.subnetwork) nic.subnetwork = settings.subnetwork;
  if (settings.externalIp) nic.accessConfigs = [{ name: "External NAT", type: "ONE_TO_ONE_NAT" }];

  return {
    name: plan.name,
    description: `agent-work worker for job ${plan.jobId} (${plan.repoFullName}); deletes itself after ${plan.maxRunSeconds}s`,
    machineType: `zones/${plan.zone}/machineTypes/${plan.machineType ?? settings.machineType}`,
    labels,
    tags: { items: settings.networkTags },
    disks: [
      {
        boot: true,
        autoDelete: true,
        type: "PERSISTENT",
        initializeParams: {
          sourceImage: settings.image,
          diskSizeGb: settings.diskGb,
          diskType: `zones/${plan.zone}/diskTypes/${settings.diskType}`,
          labels,
        },
      },
    ],
    networkInterfaces: [nic],
    serviceAccounts: [{ email: settings.serviceAccount, scopes: ["https://www.googleapis.com/auth/cloud-platform"] }],
    scheduling: {
      provisioningModel: plan.provisioningModel,
      instanceTerminationAction: "DELETE",
      maxRunDuration: { seconds: plan.maxRunSeconds },
      automaticRestart: false,
      onHostMaintenance: spot ? "TERMINATE" : "MIGRATE",
    },
    shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
    metadata: { items: metadata },
    deletionProtection: false,
  };
}
