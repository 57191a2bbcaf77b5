/**
 * Secret Manager for the gce backend: one secret per job (a short TTL, readable only by the
 * workers' service account through a binding on that secret alone, deleted at teardown), and the
 * controller's own reads of configured secrets such as the model key.
 *
 * The secret is an alternative to SSH stdin for handing a VM a credential: a root-owned helper on
 * the VM reads it through the metadata server (which the agent's user cannot reach). Its name
 * derives from the job id, so a retried put adopts it and a sweep finds it by its labels.
 */
import { SecretManagerServiceClient } from "@google-cloud/secret-manager";
import { retryTransient, type Clock } from "./backoff.js";
import { classifyGceError } from "./classify-gce-error.js";
import type { GcpClientOptions } from "./compute-api.js";
import { LABEL, jobSecretId, labelValue } from "./gce-names.js";

export const SECRET_ACCESSOR_ROLE = "roles/secretmanager.secretAccessor";

export interface JobSecretRecord {
  jobId: string;
  /** `projects/<p>/secrets/<id>`. */
  name: string;
  /** Epoch ms. */
  createdAt: number;
}

export interface JobSecrets {
  /** Stores `value` as the job's secret (creating or adopting it) and returns the secret's name. */
  put(jobId: string, value: string, options: { ttlSeconds: number; repoFullName?: string }): Promise<string>;
  /** Deletes the job's secret; one that is already gone is success. */
  remove(jobId: string): Promise<void>;
  /** Every job secret this controller deployment made (by its `agent-work-env` label). */
  list(): Promise<JobSecretRecord[]>;
}

export interface JobSecretsOptions {
  project: string;
  /** The workers' service account: the only member that may read a job's secret. */
  serviceAccount: string;
  envLabel: string;
  clientOptions?: GcpClientOptions;
  clock: Clock;
}

function timestampMs(value: { seconds?: unknown; nanos?: unknown } | string | null | undefined): number {
  if (!value) return 0;
  if (typeof value === "string") return Date.parse(value);
  return Number(value.seconds ?? 0) * 1000 + Math.floor(Number(value.nanos ?? 0) / 1e6);
}

export function createJobSecrets(options: JobSecretsOptions): JobSecrets {
  const client = new SecretManagerServiceClient(options.clientOptions ?? {});
  const parent = `projects/${options.project}`;
  const retry = <T>(call: () => Promise<T>) => retryTransient(call, { clock: options.clock });
  const nameOf = (jobId: string) => `${parent}/secrets/${jobSecretId(jobId)}`;

  return {
    async put(jobId, value, { ttlSeconds, repoFullName }) {
      const name = nameOf(jobId);
      const labels: Record<string, string> = { [LABEL.job]: labelValue(jobId), [LABEL.env]: labelValue(options.envLabel) };
      if (repoFullName) labels[LABEL.repo] = labelValue(repoFullName.replace("/", "_"));
      try {
        await retry(() =>
          client.createSecret({
            parent,
            secretId: jobSecretId(jobId),
            // The TTL deletes the secret even if every teardown and sweep is missed.
            secret: { replication: { automatic: {} }, ttl: { seconds: ttlSeconds }, labels },
          }),
        );
      } catch (err) {
        if (classifyGceError(err).kind !== "already_exists") throw err;
      }
      // The policy is replaced, not merged: exactly one reader, whatever was there before.
      await retry(() =>
        client.setIamPolicy({ resource: name, policy: { bindings: [{ role: SECRET_ACCESSOR_ROLE, members: [`serviceAccount:${options.serviceAccount}`] }] } }),
      );
      await retry(() => client.addSecretVersion({ parent: name, payload: { data: Buffer.from(value, "utf8") } }));
      return name;
    },

    async remove(jobId) {
      try {
        await retry(() => client.deleteSecret({ name: nameOf(jobId) }));
      } catch (err) {
        if (classifyGceError(err).kind !== "not_found") throw err;
      }
    },

    async list() {
      const found: JobSecretRecord[] = [];
      const filter = `labels.${LABEL.env}=${labelValue(options.envLabel)}`;
      for await (const secret of client.listSecretsAsync({ parent, filter }, { autoPaginate: false })) {
        const jobId = secret.labels?.[LABEL.job];
        if (!secret.name || !jobId) continue;
        found.push({ jobId, name: secret.name, createdAt: timestampMs(secret.createTime as never) });
      }
      return found;
    },
  };
}

/**
 * Reads the latest (or a given) version of each configured secret, for the controller's own use
 * (AGENT_ENV_FROM_SECRET_MANAGER): variable name → value. Never logs a value.
 */
export async function readSecrets(
  resources: Record<string, string>,
  options: { clientOptions?: GcpClientOptions; clock: Clock },
): Promise<Record<string, string>> {
  const client = new SecretManagerServiceClient(options.clientOptions ?? {});
  const values: Record<string, string> = {};
  for (const [variable, resource] of Object.entries(resources)) {
    const version = resource.includes("/versions/") ? resource : `${resource}/versions/latest`;
    try {
      const [response] = await retryTransient(() => client.accessSecretVersion({ name: version }), { clock: options.clock });
      const data = response.payload?.data;
      values[variable] = typeof data === "string" ? data : Buffer.from(data ?? new Uint8Array()).toString("utf8");
    } catch (err) {
      const c = classifyGceError(err);
      throw new Error(
        `cannot read ${variable} from Secret Manager (${version}): ${c.code} ${c.message}` +
          (c.kind === "not_found"
            ? "; create the secret and add a version"
            : c.kind === "fatal"
              ? "; the controller's service account needs roles/secretmanager.secretAccessor on it"
              : ""),
      );
    }
  }
  return values;
}
