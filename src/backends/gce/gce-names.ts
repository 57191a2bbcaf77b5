/**
 * Everything a gce worker is named and labelled by, derived from the job id so that a second
 * attempt finds what the first one made: the instance name, the insert `requestId`, the labels
 * (one namespace, `agent-work-*`) and the per-job secret's id.
 */
import { createHash } from "node:crypto";

export const LABEL = {
  /** The job id: how list() finds a worker again. */
  job: "agent-work-job",
  /** The repository, folded into a label value (owner_name). */
  repo: "agent-work-repo",
  /** Unix seconds after which the VM has outlived its job (the dead-man switch fires then too). */
  expiresAt: "agent-work-expires-at",
  /** Which controller deployment owns it: list() and the reaper see only their own. */
  env: "agent-work-env",
  /** A warm-pool VM: `<machine type>_<zone>` it was made for. Idle while it has no job label. */
  pool: "agent-work-pool",
  /**
   * A pool VM's SSH host key, as it was checked when the VM was booted for the pool (see
   * {@link hostKeyLabelValue}): a resumed VM keeps its key, so a take pins this one instead of
   * reading the guest attributes again.
   */
  hostKey: "agent-work-host-key",
  /**
   * On an idle pool VM the reaper is deleting (the reason, folded): set with the label fingerprint
   * before the delete, so a VM is either taken by a job or deleted by the reaper, never both.
   */
  deleting: "agent-work-deleting",
  /**
   * On a pool VM a job took: the Unix seconds of the take. The job is billed from then (its parked
   * hours before are the pool's idle cost), however its worker is read back (list() after a crash).
   */
  takenAt: "agent-work-taken-at",
} as const;

const NAME_PREFIX = "agent-work-";
/** GCE resource names: a lowercase letter, then letters, digits and dashes, at most 63. */
const GCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The VM's name for a job; refuses job ids that would not make a valid, recognisable name. */
export function instanceName(jobId: string): string {
  const name = `${NAME_PREFIX}${jobId}`;
  if (!GCE_NAME.test(name) || jobId.length === 0) {
    throw new Error(`job id ${JSON.stringify(jobId)} cannot name a GCE instance (lowercase letters, digits and dashes, at most ${63 - NAME_PREFIX.length})`);
  }
  return name;
}

/** The job id back from an instance name, or null for an instance this backend did not name. */
export function jobIdOfInstance(name: string): string | null {
  return name.startsWith(NAME_PREFIX) ? name.slice(NAME_PREFIX.length) : null;
}

/**
 * A UUID (the form `requestId` must take) derived from its parts. GCE remembers a requestId for
 * a while and answers a repeated insert with the first operation instead of a second VM, so a
 * retry after a dropped response must reuse the id, and a different placement must not.
 */
export function requestIdFor(...parts: string[]): string {
  const hex = createHash("sha256").update(parts.join("\u0000")).digest("hex");
  // Shaped as a version-5-style UUID (name-based); never the all-zero UUID GCE refuses.
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** A label value: lowercase letters, digits, `_` and `-`, at most 63 characters. */
export function labelValue(text: string): string {
  const folded = text
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "_")
    .slice(0, 63);
  return folded === "" ? "_" : folded;
}

/** `us-central1-a` → `us-central1`. */
export function regionOfZone(zone: string): string {
  return zone.replace(/-[a-z]$/, "");
}

/** The per-job Secret Manager secret id. */
export function jobSecretId(jobId: string): string {
  return `agent-work-job-${jobId}`;
}

/** The last path segment of a GCE URL (`.../zones/us-central1-a` → `us-central1-a`). */
export function lastSegment(url: string | null | undefined): string {
  return (url ?? "").split("/").pop() ?? "";
}

/** The pool label's value for a machine type and zone. */
export function poolKey(machineType: string, zone: string): string {
  return labelValue(`${machineType}_${zone}`);
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * A host key fingerprint (`SHA256:<base64>`) as a label value: the 32-byte digest in lowercase
 * base32 (52 characters), since label values allow neither capitals nor `+`, `/` or `=`, and hex
 * would be 64 characters, one over the limit.
 */
export function hostKeyLabelValue(fingerprint: string): string {
  const digest = /^SHA256:([A-Za-z0-9+/]{43})$/.exec(fingerprint)?.[1];
  if (!digest) throw new Error(`not a SHA256 host key fingerprint: ${fingerprint}`);
  const bytes = Buffer.from(digest, "base64");
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** The fingerprint back from {@link hostKeyLabelValue}'s form, or undefined for anything else. */
export function hostKeyFromLabel(value: string | undefined): string | undefined {
  if (!value || !/^[a-z2-7]{52}$/.test(value)) return undefined;
  const bytes: number[] = [];
  let bits = 0;
  let acc = 0;
  for (const c of value) {
    acc = ((acc << 5) | BASE32.indexOf(c)) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((acc >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  if (bytes.length !== 32) return undefined;
  const fingerprint = `SHA256:${Buffer.from(bytes).toString("base64").replace(/=+$/, "")}`;
  // Only the form hostKeyLabelValue writes (its last character's spare bits zero).
  return hostKeyLabelValue(fingerprint) === value ? fingerprint : undefined;
}
