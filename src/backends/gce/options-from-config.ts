import type { GceConfig } from "../../config/env.js";
import type { SshPool } from "../../remote/ssh-pool.js";
import type { GcpClientOptions } from "./compute-api.js";
import type { GceBackendOptions, GceLog } from "./gce-backend-options.js";
import type { GceCeilingSettings } from "./gce-cost.js";
import type { JobSecrets } from "./job-secrets.js";

/** The gce backend's options from the controller's configuration (GCE_* variables). */
export function gceOptionsFromConfig(
  gce: GceConfig,
  extra: { log?: GceLog; sshPool?: SshPool; clientOptions?: GcpClientOptions; jobSecrets?: JobSecrets } = {},
): GceBackendOptions {
  return {
    project: gce.project,
    zones: gce.zones,
    machineType: gce.machineType,
    image: gce.image,
    serviceAccount: gce.serviceAccount,
    network: gce.network,
    ...(gce.subnetwork ? { subnetwork: gce.subnetwork } : {}),
    externalIp: gce.externalIp,
    networkTags: gce.networkTags,
    diskGb: gce.diskGb,
    diskType: gce.diskType,
    envLabel: gce.envLabel,
    spot: gce.spot,
    onDemandFallback: gce.onDemandFallback,
    maxVms: gce.maxVms,
    ssh: { username: gce.sshUser, privateKey: gce.sshPrivateKey },
    bootTimeoutSeconds: gce.bootTimeoutSeconds,
    ...(gce.startupScript ? { startupScript: gce.startupScript } : {}),
    ...(gce.tokenDelivery ? { tokenDelivery: gce.tokenDelivery } : {}),
    ...(gce.pool && gce.pool.length > 0
      ? { pool: gce.pool, poolMaxAgeSeconds: gce.poolMaxAgeSeconds ?? 86_400, poolPark: gce.poolPark ?? "suspend", poolHedge: gce.poolHedge ?? true }
      : {}),
    ...extra,
  };
}

/** What gceCostCeiling needs, from the same configuration. */
export function gceCeilingSettings(gce: GceConfig): GceCeilingSettings {
  return {
    machineType: gce.machineType,
    zones: gce.zones,
    spot: gce.spot,
    onDemandFallback: gce.onDemandFallback,
    diskGb: gce.diskGb,
    diskType: gce.diskType,
    bootTimeoutSeconds: gce.bootTimeoutSeconds,
  };
}
