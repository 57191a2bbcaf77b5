/**
 * The SSH hosts file (`SSH_HOSTS_FILE`): YAML or JSON, validated in full, every problem reported
 * together and named by its key (`hosts[1].slots: …`). Key files are read here, so the backend
 * gets keys, never paths; a relative `privateKeyPath` is relative to the hosts file.
 *
 * ```yaml
 * hosts:
 *   - name: build-1                 # names the host in worker ids and logs
 *     address: 10.0.0.5
 *     port: 22                      # default 22
 *     user: agent-work
 *     privateKeyPath: keys/build-1  # or privateKey: |  (the key itself)
 *     hostKeySha256: SHA256:…       # ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub
 *     slots: 2
 *     labels: [large]
 *     nodePath: /usr/bin/node       # default: node on the login PATH
 *     workRoot: agent-work          # default: ~/agent-work
 * ```
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { checkRemoteWorkDir } from "../../remote/remote-work-dir.js";
import { normaliseFingerprint } from "../../remote/ssh-pool.js";
import type { SshHostOptions } from "./ssh-backend.js";

export type ReadSshHostsResult = { ok: true; hosts: SshHostOptions[] } | { ok: false; errors: string[] };

const PRIVATE_KEY = /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[\s\S]+-----END ([A-Z]+ )?PRIVATE KEY-----/;
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const hostSchema = z.strictObject({
  name: z.string().regex(HOST_NAME, "expected letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit").optional(),
  address: z
    .string()
    .min(1)
    .regex(/^[^\s/]+$/, "expected a host name or IP address, without spaces or a path"),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, "expected a user name such as agent-work"),
  privateKey: z.string().regex(PRIVATE_KEY, "expected the private key itself, from -----BEGIN … PRIVATE KEY----- to -----END … PRIVATE KEY-----").optional(),
  privateKeyPath: z.string().min(1).optional(),
  hostKeySha256: z
    .string()
    .regex(
      /^(SHA256:)?[A-Za-z0-9+/]{43}=?$/,
      "expected a fingerprint such as SHA256:uoQv3EiNR1mAkO4JEqC76Sl0TZI1OV91JZGwonfFEh8 (ssh-keygen -lf <host key>.pub)",
    )
    .optional(),
  slots: z.number().int().min(1).max(1000),
  labels: z.array(z.string().min(1)).default([]),
  nodePath: z.string().min(1).optional(),
  workRoot: z
    .string()
    .refine((v) => {
      try {
        checkRemoteWorkDir(v);
        return true;
      } catch {
        return false;
      }
    }, "expected a folder path without '..', relative to the user's home or absolute")
    .optional(),
});

const fileSchema = z.strictObject({ hosts: z.array(hostSchema).min(1, "expected at least one host") });

/** zod's own words for a missing key ("expected string, received undefined") are for programmers. */
const missingIsRequired: z.core.$ZodErrorMap = (issue) => (issue.code === "invalid_type" && issue.input === undefined ? "required" : undefined);

function where(p: readonly PropertyKey[]): string {
  return p.reduce<string>((acc, part) => (typeof part === "number" ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), "") || "(file)";
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    const known = issue.path.length === 0 ? ["hosts"] : Object.keys(hostSchema.shape);
    return issue.keys.map((k) => `${where([...issue.path, k])}: unknown key (known keys: ${known.join(", ")})`).join("\n");
  }
  return `${where(issue.path)}: ${issue.message}`;
}

/** Reads and validates the hosts file; never throws. */
export function readSshHostsFile(file: string): ReadSshHostsResult {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return { ok: false, errors: [`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`] };
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    return { ok: false, errors: [`${file} is not valid YAML or JSON: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`] };
  }
  const parsed = fileSchema.safeParse(raw, { error: missingIsRequired });
  if (!parsed.success) return { ok: false, errors: parsed.error.issues.flatMap((i) => describeIssue(i).split("\n")) };

  const errors: string[] = [];
  const hosts: SshHostOptions[] = [];
  const names = new Map<string, number>();
  parsed.data.hosts.forEach((h, i) => {
    const at = `hosts[${i}]`;
    const name = h.name ?? (HOST_NAME.test(h.address) ? h.address : undefined);
    if (!name) {
      errors.push(`${at}.name: required when the address (${h.address}) is not usable as a name`);
      return;
    }
    if (names.has(name)) errors.push(`${at}.name: ${JSON.stringify(name)} is already the name of hosts[${names.get(name)}]`);
    names.set(name, i);
    let privateKey = h.privateKey;
    if ((h.privateKey === undefined) === (h.privateKeyPath === undefined)) {
      errors.push(`${at}: set exactly one of privateKey and privateKeyPath`);
    } else if (h.privateKeyPath !== undefined) {
      const keyFile = path.resolve(path.dirname(path.resolve(file)), h.privateKeyPath);
      try {
        privateKey = readFileSync(keyFile, "utf8");
        if (!PRIVATE_KEY.test(privateKey)) errors.push(`${at}.privateKeyPath: ${keyFile} does not hold a private key`);
      } catch (err) {
        errors.push(`${at}.privateKeyPath: cannot read ${keyFile} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
    }
    if (h.nodePath !== undefined && h.nodePath !== "node" && !h.nodePath.startsWith("/")) {
      errors.push(`${at}.nodePath: expected an absolute path such as /usr/bin/node, or node`);
    }
    hosts.push({
      name,
      address: h.address,
      port: h.port,
      user: h.user,
      privateKey: privateKey ?? "",
      slots: h.slots,
      labels: h.labels,
      ...(h.hostKeySha256 ? { hostKeySha256: normaliseFingerprint(h.hostKeySha256) } : {}),
      ...(h.nodePath ? { nodePath: h.nodePath } : {}),
      ...(h.workRoot ? { workRoot: h.workRoot } : {}),
    });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, hosts };
}

/** The hosts in `file`, for `ssh.create({ hosts })`; throws one error listing every problem. */
export function loadSshHosts(file: string): SshHostOptions[] {
  const result = readSshHostsFile(file);
  if (!result.ok) throw new Error(`SSH_HOSTS_FILE ${file} is not valid:\n${result.errors.map((e) => `  - ${e}`).join("\n")}`);
  return result.hosts;
}
