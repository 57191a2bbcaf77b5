/**
 * `agent-work doctor`'s cloudrun section: checks, before any job needs them, what the cloudrun
 * backend relies on — credentials, the project and region through the Cloud Run Admin API, every
 * permission the backend uses, the right to run jobs as the workers' account, the worker image and
 * the prices it bills from — and says for each what is missing and the command that fixes it.
 * Read-only: it lists, reads and asks `testIamPermissions`; it creates nothing and never prints a
 * secret (the access token goes only into the Authorization header).
 */
import { resourcesFor, type RunResources } from "../../backends/cloudrun/build-run-job.js";
import { GoogleApiError, googleJsonCaller } from "../../backends/cloudrun/run-api.js";
import type { CloudRunConfig } from "../../config/env.js";
import { bundledCloudRunPrices, cloudRunRatePerHour, type CloudRunPrices } from "../../cost/cloudrun-price.js";
import type { DoctorCheck } from "./doctor-check.js";
import { adcPrincipal } from "./adc-principal.js";

type GoogleCall = ReturnType<typeof googleJsonCaller>;

export interface CloudRunDoctorDeps {
  /** Who the controller is to Google Cloud; the default asks Application Default Credentials. */
  credentials?: () => Promise<{ principal: string }>;
  /** A bearer token per call; default Application Default Credentials. Tests return undefined. */
  accessToken?: () => Promise<string | undefined>;
  /** The Google endpoints, default the real ones; tests point them all at one fake on 127.0.0.1. */
  urls?: Partial<Record<keyof typeof GOOGLE_URLS, string>>;
  fetch?: typeof fetch;
  prices?: CloudRunPrices;
}

const GOOGLE_URLS = {
  run: "https://run.googleapis.com",
  resourceManager: "https://cloudresourcemanager.googleapis.com",
  iam: "https://iam.googleapis.com",
  artifactRegistry: "https://artifactregistry.googleapis.com",
};

/**
 * Every project-level permission the backend's calls need (run-api.ts, and gce/job-secrets.ts's
 * put and remove for the input secret), with the role README.md's set-up grants for it.
 * `runWithOverrides`: jobs.run passes the execution's timeout as an override.
 */
export const CLOUDRUN_BACKEND_PERMISSIONS = [
  ...[
    "run.jobs.create",
    "run.jobs.get",
    "run.jobs.list",
    "run.jobs.delete",
    "run.jobs.run",
    "run.jobs.runWithOverrides",
    "run.executions.get",
    "run.executions.list",
    "run.executions.cancel",
  ].map((permission) => ({ permission, role: "roles/run.developer" })),
  { permission: "logging.logEntries.list", role: "roles/logging.viewer" },
  ...["secretmanager.secrets.create", "secretmanager.secrets.setIamPolicy", "secretmanager.versions.add", "secretmanager.secrets.delete"].map((permission) => ({
    permission,
    role: "roles/secretmanager.admin",
  })),
] as const;

type Add = (check: DoctorCheck) => void;
/** What went wrong, in a line; for a dropped connection, where it was going and why it failed. */
function describe(err: unknown, url: string): string {
  if (err instanceof GoogleApiError) return err.message;
  const cause = err instanceof Error && err.cause instanceof Error ? ` (${(err.cause as Error & { code?: string }).code ?? err.cause.message})` : "";
  return `could not reach ${new URL(url).host}: ${err instanceof Error ? err.message : String(err)}${cause}`;
}

/** A "this API is off in the project" answer, which Google sends as a 403 like a missing permission. */
function serviceDisabled(err: unknown): boolean {
  return err instanceof GoogleApiError && /SERVICE_DISABLED|has not been used in project|is disabled/i.test(err.message);
}

/** `serviceAccount:<email>` for a service account, else a placeholder the operator fills in. */
function member(principal: string): string {
  return /^[^@\s]+@[^@\s]+\.gserviceaccount\.com$/.test(principal) ? `serviceAccount:${principal}` : "user:<you>@<domain>";
}

/** Runs every cloudrun check it can; a failed prerequisite (no credentials, no project) skips what depends on it. */
export async function checkCloudRun(cloudrun: CloudRunConfig, deps: CloudRunDoctorDeps, add: Add): Promise<void> {
  const size = defaultTaskSize(cloudrun, add);
  if (size) checkPrices(cloudrun, size, deps.prices ?? bundledCloudRunPrices, add);

  let principal: string;
  try {
    ({ principal } = await (deps.credentials ?? adcPrincipal)());
    add({ name: "cloudrun credentials", status: "ok", detail: `calling Google Cloud as ${principal}` });
  } catch (err) {
    add({
      name: "cloudrun credentials",
      status: "fail",
      detail: `no usable Google Cloud credentials: ${err instanceof Error ? err.message : String(err)}`,
      fix: "on a GCE VM or Cloud Run, attach the controller's service account; elsewhere run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a key file of that account",
    });
    add(skipped("the project, permissions and image", "without credentials"));
    return;
  }

  const urls = { ...GOOGLE_URLS, ...deps.urls };
  const call = googleJsonCaller(deps);
  if (!(await checkRegion(cloudrun, urls.run, call, add))) {
    add(skipped("the permissions and image", `while ${cloudrun.project}/${cloudrun.region} cannot be reached`));
    return;
  }
  await checkPermissions(cloudrun, principal, urls.resourceManager, call, add);
  await checkActAs(cloudrun, principal, urls.iam, call, add);
  await checkImage(cloudrun, urls.artifactRegistry, call, add);
}

function skipped(what: string, why: string): DoctorCheck {
  return { name: "cloudrun", status: "skip", detail: `${what} not checked ${why}` };
}

/** The size of a task when the job names no machine type: CLOUDRUN_CPU and CLOUDRUN_MEMORY as Cloud Run will take them. */
function defaultTaskSize(cloudrun: CloudRunConfig, add: Add): RunResources | null {
  const where = `project ${cloudrun.project}, region ${cloudrun.region}, image ${cloudrun.image}, running as ${cloudrun.serviceAccount}`;
  try {
    const size = resourcesFor(undefined, { cpu: cloudrun.cpu, memory: cloudrun.memory });
    const rounded = size.cpu !== cloudrun.cpu ? ` (CLOUDRUN_CPU=${cloudrun.cpu} rounded up: Cloud Run allows at most 4 GiB per CPU)` : "";
    add({ name: "cloudrun configuration", status: "ok", detail: `${where}; a task has ${size.cpu} vCPU and ${size.memory}${rounded}` });
    return size;
  } catch (err) {
    add({
      name: "cloudrun configuration",
      status: "fail",
      detail: `${where}; ${err instanceof Error ? err.message : String(err)}`,
      fix: "set CLOUDRUN_CPU and CLOUDRUN_MEMORY to a size a task can have: 1, 2, 4, 6 or 8 CPU with at most 4Gi per CPU",
    });
    return null;
  }
}

/** The backend bills every task from these prices, and a job it cannot price does not run. */
function checkPrices(cloudrun: CloudRunConfig, size: RunResources, prices: CloudRunPrices, add: Add): void {
  const name = `price Cloud Run in ${cloudrun.region}`;
  try {
    const rate = cloudRunRatePerHour(size, cloudrun.region, prices);
    add({ name, status: "ok", detail: `$${rate.usdPerHour.toFixed(4)} an hour for a ${size.cpu} vCPU, ${size.memory} task (${rate.source})` });
  } catch (err) {
    add({
      name,
      status: "fail",
      detail: err instanceof Error ? err.message : String(err),
      fix: `without a price no job on cloudrun can be priced, capped or billed: pick a priced CLOUDRUN_REGION, or add ${cloudrun.region}'s tier with its vCPU-second and GiB-second prices from https://cloud.google.com/run/pricing to src/cost/cloudrun-prices.json`,
    });
  }
}

/** Lists one job in the location, as the backend's list() does: the project exists, the API is on and answers there. */
async function checkRegion(cloudrun: CloudRunConfig, runUrl: string, call: GoogleCall, add: Add): Promise<boolean> {
  const name = `cloudrun ${cloudrun.project}/${cloudrun.region}`;
  const url = `${runUrl}/v2/projects/${cloudrun.project}/locations/${cloudrun.region}/jobs?pageSize=1`;
  try {
    await call("GET", url);
    add({ name, status: "ok", detail: "reachable, Cloud Run Admin API enabled" });
    return true;
  } catch (err) {
    const enable = `gcloud services enable run.googleapis.com secretmanager.googleapis.com logging.googleapis.com --project ${cloudrun.project}`;
    const status = err instanceof GoogleApiError ? err.httpStatus : 0;
    add({
      name,
      status: "fail",
      detail: describe(err, url),
      fix: serviceDisabled(err)
        ? enable
        : status === 403
          ? `check CLOUDRUN_PROJECT (${cloudrun.project}: does it exist?), and give the controller's account roles/run.developer in it`
          : status === 400 || status === 404
            ? `check CLOUDRUN_PROJECT and CLOUDRUN_REGION (\`gcloud run regions list --project ${cloudrun.project}\`), and that the API is on: ${enable}`
            : status >= 500 || status === 429
              ? "Google Cloud did not answer; try again"
              : `check the network path to ${new URL(url).host} (proxy, firewall, DNS) from this machine`,
    });
    return false;
  }
}

/** Asks Resource Manager which of the backend's permissions the controller holds on the project; each missing one is named with the role that grants it. */
async function checkPermissions(cloudrun: CloudRunConfig, principal: string, resourceManagerUrl: string, call: GoogleCall, add: Add): Promise<void> {
  const name = `cloudrun permissions in ${cloudrun.project}`;
  const url = `${resourceManagerUrl}/v1/projects/${cloudrun.project}:testIamPermissions`;
  let granted: Set<string>;
  try {
    const answer = await call<{ permissions?: string[] }>("POST", url, { permissions: CLOUDRUN_BACKEND_PERMISSIONS.map((p) => p.permission) });
    granted = new Set(answer.permissions ?? []);
  } catch (err) {
    add({
      name,
      status: "fail",
      detail: describe(err, url),
      fix: serviceDisabled(err)
        ? `gcloud services enable cloudresourcemanager.googleapis.com --project ${cloudrun.project}`
        : "Resource Manager did not answer; try again",
    });
    return;
  }
  const missing = CLOUDRUN_BACKEND_PERMISSIONS.filter((p) => !granted.has(p.permission));
  if (missing.length === 0) {
    add({ name, status: "ok", detail: "the controller may do everything the backend does there (jobs, executions, their logs, input secrets)" });
    return;
  }
  const roles = [...new Set(missing.map((p) => p.role))];
  add({
    name,
    status: "fail",
    detail: `the controller may not ${missing.map((p) => p.permission).join(", ")}`,
    fix: roles.map((role) => `gcloud projects add-iam-policy-binding ${cloudrun.project} --member ${member(principal)} --role ${role}`).join("; "),
  });
}

/** Creating a job that runs as the workers' account needs iam.serviceAccounts.actAs on that account. */
async function checkActAs(cloudrun: CloudRunConfig, principal: string, iamUrl: string, call: GoogleCall, add: Add): Promise<void> {
  const sa = cloudrun.serviceAccount;
  const name = `cloudrun worker service account`;
  const url = `${iamUrl}/v1/projects/-/serviceAccounts/${sa}:testIamPermissions`;
  const grant = `gcloud iam service-accounts add-iam-policy-binding ${sa} --member ${member(principal)} --role roles/iam.serviceAccountUser`;
  try {
    const answer = await call<{ permissions?: string[] }>("POST", url, { permissions: ["iam.serviceAccounts.actAs"] });
    if ((answer.permissions ?? []).includes("iam.serviceAccounts.actAs"))
      add({ name, status: "ok", detail: `${sa} exists and the controller may run jobs as it` });
    else add({ name, status: "fail", detail: `the controller may not run jobs as ${sa} (iam.serviceAccounts.actAs)`, fix: grant });
  } catch (err) {
    const notFound = err instanceof GoogleApiError && err.httpStatus === 404;
    add({
      name,
      status: "fail",
      detail: `${sa}: ${describe(err, url)}`,
      fix: notFound
        ? `create it (it needs no role): gcloud iam service-accounts create ${sa.split("@")[0]} --project ${sa.split("@")[1]?.split(".")[0]}, then ${grant}`
        : grant,
    });
  }
}

/** An Artifact Registry image reference: its repository and the tag or digest it names. */
function parseArtifactRegistryImage(
  image: string,
): { project: string; location: string; repository: string; pkg: string; tag?: string; digest?: string } | null {
  const m = /^([a-z0-9-]+)-docker\.pkg\.dev\/([^/]+)\/([^/]+)\/([^:@]+)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(image);
  if (!m) return null;
  const [, location, project, repository, pkg, tag, digest] = m as unknown as [string, string, string, string, string, string | undefined, string | undefined];
  return { location, project, repository, pkg, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/**
 * The worker image, through the Artifact Registry API: the digest (or tag, `latest` by default) it
 * names exists. Cloud Run's service agent pulls it, not the controller, so a controller that may
 * not look is a warning, not a failure.
 */
async function checkImage(cloudrun: CloudRunConfig, artifactRegistryUrl: string, call: GoogleCall, add: Add): Promise<void> {
  const name = "cloudrun image";
  const ref = parseArtifactRegistryImage(cloudrun.image);
  if (!ref) {
    add({
      name,
      status: "skip",
      detail: `${cloudrun.image} is not in Artifact Registry (<location>-docker.pkg.dev/<project>/<repository>/<image>), the only registry doctor reads`,
      fix: `docker buildx imagetools inspect ${cloudrun.image}`,
    });
    return;
  }
  const pkgPath = `projects/${ref.project}/locations/${ref.location}/repositories/${ref.repository}/packages/${encodeURIComponent(ref.pkg)}`;
  const what = ref.digest ? `versions/${ref.digest}` : `tags/${ref.tag ?? "latest"}`;
  const url = `${artifactRegistryUrl}/v1/${pkgPath}/${what}`;
  const push = `build k8s/worker.Dockerfile and push it: docker buildx build -f k8s/worker.Dockerfile -t ${cloudrun.image.replace(/@sha256:.*$/, ":<tag>")} --push . (README.md, "Run on Cloud Run"), or point CLOUDRUN_IMAGE at an image that exists`;
  try {
    const found = await call<{ name?: string; version?: string }>("GET", url);
    const digest = ref.digest ?? found.version?.split("/").pop();
    add({ name, status: "ok", detail: `${cloudrun.image} exists${digest && !ref.digest ? ` (${digest})` : ""}` });
  } catch (err) {
    const status = err instanceof GoogleApiError ? err.httpStatus : 0;
    if (status === 404) {
      add({ name, status: "fail", detail: `${cloudrun.image}: no such ${ref.digest ? "digest" : "tag"} (${describe(err, url)})`, fix: push });
      return;
    }
    add({
      name,
      status: "warn",
      detail: `cannot see ${cloudrun.image}: ${describe(err, url)}`,
      fix:
        status === 403
          ? `to let doctor look, grant the controller's account roles/artifactregistry.reader on ${ref.repository} in ${ref.project}; Cloud Run's service agent (service-<project number>@serverless-robot-prod.iam.gserviceaccount.com) needs that role to pull it`
          : "Artifact Registry did not answer; try again",
    });
  }
}
