/**
 * `agent-work doctor`'s gce section: checks, before any job needs them, everything the gce backend
 * relies on — credentials, project, zones, machine type, image, prices, Secret Manager — and says
 * for each what is missing and the command or setting that fixes it. Read-only: it creates nothing
 * and never prints a secret.
 */
import { ImagesClient, MachineTypesClient, ProjectsClient, ZonesClient } from "@google-cloud/compute";
import { SecretManagerServiceClient } from "@google-cloud/secret-manager";
import { classifyGceError } from "../../backends/gce/classify-gce-error.js";
import type { GcpClientOptions } from "../../backends/gce/compute-api.js";
import { regionOfZone } from "../../backends/gce/gce-names.js";
import type { ControllerConfig, GceConfig } from "../../config/env.js";
import { imageLabelKey, PINNED_AGENT_CLIS, versionFromImageLabel } from "../../agents/agent-cli-versions.js";
import type { AgentPreset } from "../../agents/presets.js";
import { reportAgentVersions } from "./check-agent-clis.js";
import type { DoctorCheck } from "./doctor-check.js";
import { adcPrincipal } from "./adc-principal.js";
import { estimate } from "../../cost/estimate.js";
import { bundledPriceTable, type PriceTable } from "../../cost/price-table.js";

export interface GceDoctorDeps {
  /** Client options for every Google client; empty in production (ADC, the real endpoints). */
  clientOptions?: GcpClientOptions;
  /** Who the controller is to Google Cloud; the default asks Application Default Credentials. */
  credentials?: () => Promise<{ principal: string }>;
  priceTable?: PriceTable;
}

function describe(err: unknown): { kind: string; text: string } {
  const c = classifyGceError(err);
  return { kind: c.kind, text: `${c.code}: ${c.message}` };
}

/** Runs every gce check it can; a failed prerequisite (no credentials, no project) skips what depends on it. */
export async function checkGce(
  config: Pick<ControllerConfig, "agentEnvSecrets" | "defaultAgent"> & { gce: GceConfig },
  deps: GceDoctorDeps,
  add: (check: DoctorCheck) => void,
): Promise<void> {
  const gce = config.gce;
  add({
    name: "gce configuration",
    status: "ok",
    detail: `project ${gce.project}, zones ${gce.zones.join(", ")}, ${gce.machineType}${gce.spot ? " spot" : ""}, image ${gce.image}`,
  });

  try {
    const { principal } = await (deps.credentials ?? adcPrincipal)();
    add({ name: "credentials", status: "ok", detail: `calling Google Cloud as ${principal}` });
  } catch (err) {
    add({
      name: "credentials",
      status: "fail",
      detail: `no usable Google Cloud credentials: ${err instanceof Error ? err.message : String(err)}`,
      fix: "on a GCE VM or Cloud Run, attach the controller service account terraform/ creates; elsewhere run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a key file of that account",
    });
    return;
  }

  const options = deps.clientOptions ?? {};
  const projectOk = await checkProject(gce, options, add);
  if (!projectOk) return;
  await checkZonesAndMachineType(gce, options, add);
  await checkImage(gce, options, add, config.defaultAgent);
  checkPrices(gce, deps.priceTable ?? bundledPriceTable, add);
  checkServiceAccount(gce, add);
  if (config.agentEnvSecrets) await checkSecrets(config.agentEnvSecrets, options, add);
}

async function checkProject(gce: GceConfig, options: GcpClientOptions, add: (c: DoctorCheck) => void): Promise<boolean> {
  try {
    await new ProjectsClient(options).get({ project: gce.project });
    add({ name: `project ${gce.project}`, status: "ok", detail: "reachable, Compute Engine API enabled" });
    return true;
  } catch (err) {
    const { kind, text } = describe(err);
    add({
      name: `project ${gce.project}`,
      status: "fail",
      detail: text,
      fix:
        kind === "not_found"
          ? `check GCE_PROJECT, and enable the API: gcloud services enable compute.googleapis.com secretmanager.googleapis.com --project ${gce.project}`
          : kind === "fatal"
            ? `the controller's account needs the roles terraform/ grants it (roles/compute.instanceAdmin.v1 and roles/iam.serviceAccountUser on the worker account) in ${gce.project}`
            : "Google Cloud did not answer; try again",
    });
    return false;
  }
}

async function checkZonesAndMachineType(gce: GceConfig, options: GcpClientOptions, add: (c: DoctorCheck) => void): Promise<void> {
  const zones = new ZonesClient(options);
  const machineTypes = new MachineTypesClient(options);
  for (const zone of gce.zones) {
    try {
      const [found] = await zones.get({ project: gce.project, zone });
      const status = String(found.status ?? "UP");
      if (status !== "UP") {
        add({ name: `zone ${zone}`, status: "warn", detail: `status ${status}`, fix: `take ${zone} out of GCE_ZONES until it is UP again` });
        continue;
      }
    } catch (err) {
      const { kind, text } = describe(err);
      add({
        name: `zone ${zone}`,
        status: "fail",
        detail: text,
        fix:
          kind === "not_found" ? `${zone} is not a zone; list them with \`gcloud compute zones list\` and fix GCE_ZONES` : "check the controller's permissions",
      });
      continue;
    }
    try {
      await machineTypes.get({ project: gce.project, zone, machineType: gce.machineType });
      add({ name: `zone ${zone}`, status: "ok", detail: `UP, offers ${gce.machineType}` });
    } catch (err) {
      const { kind, text } = describe(err);
      add({
        name: `zone ${zone}`,
        status: "fail",
        detail: `${gce.machineType}: ${text}`,
        fix:
          kind === "not_found"
            ? `${zone} does not offer ${gce.machineType}; pick another GCE_MACHINE_TYPE or drop the zone (\`gcloud compute machine-types list --zones ${zone}\`)`
            : "check the controller's permissions",
      });
    }
  }
}

/**
 * The agent CLIs a baked image holds, from the labels ansible/bake-image.sh writes from
 * agent-clis/package.json (the image's disk itself cannot be read without starting a VM).
 */
function reportImageAgentVersions(
  where: string,
  labels: Record<string, string>,
  defaultAgent: AgentPreset,
  gce: GceConfig,
  add: (c: DoctorCheck) => void,
): void {
  const rebake = () => `bake the image again from this checkout: ansible/bake-image.sh ${gce.project} ${gce.zones[0] ?? "<zone>"} <controller key>.pub`;
  if (!PINNED_AGENT_CLIS.some((cli) => imageLabelKey(cli) in labels)) {
    add({
      name: `${where}: agent CLIs`,
      status: "skip",
      detail: "the image carries no agent-cli-* labels (baked before bake-image.sh wrote them, or not by it), so doctor cannot see which CLI versions it holds",
      fix: rebake(),
    });
    return;
  }
  const found = Object.fromEntries(
    PINNED_AGENT_CLIS.map((cli) => [
      cli.bin,
      imageLabelKey(cli) in labels
        ? (versionFromImageLabel(labels[imageLabelKey(cli)]) ?? {
            unreadable: `label ${imageLabelKey(cli)}=${String(labels[imageLabelKey(cli)]).slice(0, 60)}`,
          })
        : null,
    ]),
  );
  reportAgentVersions(where, found, defaultAgent, add, rebake);
}

async function checkImage(gce: GceConfig, options: GcpClientOptions, add: (c: DoctorCheck) => void, defaultAgent: AgentPreset): Promise<void> {
  const m = /^projects\/([^/]+)\/global\/images\/(family\/)?(.+)$/.exec(gce.image);
  if (!m) {
    add({ name: "image", status: "fail", detail: `GCE_IMAGE ${gce.image} is not an image path`, fix: "use projects/<p>/global/images/family/<f>" });
    return;
  }
  const [, project, family, name] = m as unknown as [string, string, string | undefined, string];
  try {
    const images = new ImagesClient(options);
    const [image] = family ? await images.getFromFamily({ project, family: name }) : await images.get({ project, image: name });
    const status = String(image.status ?? "READY");
    add({
      name: "image",
      status: status === "READY" ? "ok" : "fail",
      detail: `${gce.image} → ${image.name ?? name} (${status})`,
      ...(status === "READY" ? {} : { fix: "wait for the image to be READY, or bake it again with ansible/bake-image.sh" }),
    });
    reportImageAgentVersions(`gce image ${image.name ?? name}`, image.labels ?? {}, defaultAgent, gce, add);
  } catch (err) {
    const { kind, text } = describe(err);
    add({
      name: "image",
      status: "fail",
      detail: `${gce.image}: ${text}`,
      fix:
        kind === "not_found"
          ? `bake the worker image: ansible/bake-image.sh ${gce.project} ${gce.zones[0] ?? "<zone>"} <controller key>.pub (README.md, "Run on Google Cloud"), or point GCE_IMAGE at an existing one`
          : "the controller's account needs compute.images.get / useReadOnly on the image's project",
    });
  }
}

function checkPrices(gce: GceConfig, table: PriceTable, add: (c: DoctorCheck) => void): void {
  const models = gce.spot ? (gce.onDemandFallback ? [true, false] : [true]) : [false];
  for (const region of new Set(gce.zones.map(regionOfZone))) {
    for (const spot of models) {
      const what = `${gce.machineType}${spot ? " spot" : " on-demand"} in ${region}`;
      try {
        const e = estimate({ machineType: gce.machineType, region, spot, seconds: 3600, diskGb: gce.diskGb, diskType: gce.diskType }, table);
        add({ name: `price ${what}`, status: "ok", detail: `$${e.usd.toFixed(4)} an hour with its disk (${table.source.file}, ${table.source.generated})` });
      } catch (err) {
        add({
          name: `price ${what}`,
          status: "fail",
          detail: err instanceof Error ? err.message : String(err),
          fix: "without a price no cost ceiling can be shown or enforced; pick a machine type and region in the table, or add its family to scripts/build-price-table.ts and run `npm run prices`",
        });
      }
    }
  }
}

function checkServiceAccount(gce: GceConfig, add: (c: DoctorCheck) => void): void {
  // Whether it exists and holds no role needs the IAM API, which this build does not use.
  add({
    name: "worker service account",
    status: "skip",
    detail: `${gce.serviceAccount} is not the default compute account; that it exists and holds no role is declared in terraform/ (\`terraform plan\` shows drift)`,
  });
}

async function checkSecrets(resources: Record<string, string>, options: GcpClientOptions, add: (c: DoctorCheck) => void): Promise<void> {
  const client = new SecretManagerServiceClient(options);
  for (const [variable, resource] of Object.entries(resources)) {
    const secret = resource.replace(/\/versions\/[^/]+$/, "");
    const version = resource.includes("/versions/") ? resource : `${resource}/versions/latest`;
    try {
      const [granted] = await client.testIamPermissions({ resource: secret, permissions: ["secretmanager.versions.access"] });
      if (!(granted.permissions ?? []).includes("secretmanager.versions.access")) {
        add({
          name: `secret ${variable}`,
          status: "fail",
          detail: `${secret}: the controller may not read it`,
          fix: `grant the controller's account roles/secretmanager.secretAccessor on ${secret}`,
        });
        continue;
      }
      await client.getSecretVersion({ name: version });
      add({ name: `secret ${variable}`, status: "ok", detail: `${version} exists and the controller may read it` });
    } catch (err) {
      const { kind, text } = describe(err);
      add({
        name: `secret ${variable}`,
        status: "fail",
        detail: `${version}: ${text}`,
        fix:
          kind === "not_found"
            ? `create it: printf %s "$VALUE" | gcloud secrets create ${secret.split("/").pop()} --data-file=- (terraform/ declares the model-key secret)`
            : `grant the controller's account roles/secretmanager.secretAccessor on ${secret}`,
      });
    }
  }
}
