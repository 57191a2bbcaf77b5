import { resolve } from "node:path";
import { readSshHostsFile } from "../../backends/ssh/load-ssh-hosts.js";
import { optionalText, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** The ssh backend: hosts of the operator's own, listed in a file; SSH_HOSTS_FILE turns it on. */
export const SSH_VARS = [
  {
    name: "SSH_HOSTS_FILE",
    secret: false,
    description:
      "Path of a YAML or JSON file listing the ssh backend's hosts (address, user, key, slots, labels, host key fingerprint); setting it enables the backend.",
  },
] as const satisfies readonly ControllerEnvVar[];

export const SSH_FIELDS = {
  SSH_HOSTS_FILE: optionalText(),
} satisfies Record<VarName<typeof SSH_VARS>, EnvField>;

type SshValues = Partial<FieldValues<typeof SSH_FIELDS>>;

/** The hosts file, checked now (every problem in it reported), and each host's labels for the routing rules. */
export function resolveSshHosts(values: SshValues, ctx: RuleContext): { sshHostsFile: string | undefined; sshHostLabels: string[][] | undefined } {
  const { fail } = ctx;
  const sshHostsFile = values.SSH_HOSTS_FILE === undefined ? undefined : resolve(values.SSH_HOSTS_FILE);
  let sshHostLabels: string[][] | undefined;
  if (sshHostsFile !== undefined) {
    const hosts = readSshHostsFile(sshHostsFile);
    if (!hosts.ok) for (const problem of hosts.errors) fail("SSH_HOSTS_FILE", problem);
    else sshHostLabels = hosts.hosts.map((h) => h.labels);
  }
  return { sshHostsFile, sshHostLabels };
}
