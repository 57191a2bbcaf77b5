/**
 * Everything a k8s worker is named, labelled and annotated by, derived from the job id so that a
 * second attempt finds what the first one made: the Job's name, its input Secret's name, the
 * labels `list()` selects on (one namespace, `agent-work-*`) and the annotations that carry what
 * a label value cannot (the repository's full name, milliseconds).
 */

/** The backend's name: in the registry, and the prefix of every worker id it gives. */
export const BACKEND_NAME = "k8s";

export const LABEL = {
  /** The job id: how list() finds a worker again. */
  job: "agent-work-job",
  /** The repository, folded into a label value (owner_name). */
  repo: "agent-work-repo",
  /** Set on everything this backend makes; list() and the NetworkPolicy select on it. */
  managedBy: "app.kubernetes.io/managed-by",
  /** What the object is: the worker Job and its pods, or the Job's input Secret. */
  name: "app.kubernetes.io/name",
} as const;

export const MANAGED_BY = "agent-work";
export const WORKER_APP = "agent-work-worker";
export const INPUT_APP = "agent-work-input";

export const ANNOTATION = {
  /** `owner/name`, which a label value cannot hold. */
  repo: "agent-work/repo",
  /** Milliseconds since the epoch when create() made the Job: the worker's `createdAt`, stable across adoptions. */
  createdAt: "agent-work/created-at",
  /** JobSpec.maxSeconds, from which run() computes the deadline left when the Job starts. */
  maxSeconds: "agent-work/max-seconds",
} as const;

/** Selects every Job (and pod) this backend made in its namespace. */
export const WORKER_SELECTOR = `${LABEL.managedBy}=${MANAGED_BY},${LABEL.name}=${WORKER_APP},${LABEL.job}`;

const PREFIX = "agent-work-";
/**
 * A Job name must be a DNS label of at most 63 characters, because the Job controller copies it
 * into the `batch.kubernetes.io/job-name` label of its pods.
 */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_JOB_ID = 63 - PREFIX.length;

/** The Job's name for a job; refuses ids that would not make a valid, recognisable name. */
export function jobName(jobId: string): string {
  if (jobId.length === 0 || jobId.length > MAX_JOB_ID || !DNS_LABEL.test(jobId)) {
    throw new Error(`job id ${JSON.stringify(jobId)} cannot name a Kubernetes Job (lowercase letters, digits and dashes, at most ${MAX_JOB_ID})`);
  }
  return `${PREFIX}${jobId}`;
}

/** The per-job Secret that carries the worker's input (and so the repository token). */
export function inputSecretName(jobId: string): string {
  return `${jobName(jobId)}-input`;
}

/** A label value: letters, digits, `.`, `_` and `-`, at most 63, starting and ending alphanumeric. */
export function labelValue(text: string): string {
  const folded = text
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  return folded === "" ? "unknown" : folded;
}

/** The labels every object of one job carries. */
export function jobLabels(jobId: string, repoFullName: string, app: string): Record<string, string> {
  return { [LABEL.managedBy]: MANAGED_BY, [LABEL.name]: app, [LABEL.job]: jobId, [LABEL.repo]: labelValue(repoFullName) };
}

/** Selects the pods of one job's Job. */
export function podSelector(jobId: string): string {
  return `${LABEL.managedBy}=${MANAGED_BY},${LABEL.name}=${WORKER_APP},${LABEL.job}=${jobId}`;
}
