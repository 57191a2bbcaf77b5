import { parseCliVersion, PINNED_AGENT_CLIS, WORKER_AGENT_PATH, type FoundVersion } from "../../agents/agent-cli-versions.js";
import type { ControllerConfig } from "../../config/env.js";
import { reportAgentVersions } from "./check-agent-clis.js";
import type { DoctorCheck } from "./doctor-check.js";

/**
 * Each host in SSH_HOSTS_FILE, logged in to with its key and pinned host key, and asked for the
 * worker's tools and for the agent CLIs' versions where the worker looks for them (`agentPath`).
 */
export async function checkSshHosts(
  config: Pick<ControllerConfig, "sshHostsFile" | "localSandbox" | "defaultAgent">,
  add: (check: DoctorCheck) => void,
  agentPath = WORKER_AGENT_PATH,
): Promise<void> {
  const [{ ssh }, { loadSshHosts }] = await Promise.all([import("../../backends/ssh/ssh-backend.js"), import("../../backends/ssh/load-ssh-hosts.js")]);
  let backend;
  try {
    const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, child: () => quiet };
    backend = ssh.create({ hosts: loadSshHosts(config.sshHostsFile!), log: quiet as never });
  } catch (err) {
    add({
      name: "ssh hosts",
      status: "fail",
      detail: err instanceof Error ? err.message : String(err),
      fix: "fix SSH_HOSTS_FILE (.env.example describes each field)",
    });
    return;
  }
  try {
    for (const h of await backend.checkHealth({ agentVersions: { bins: PINNED_AGENT_CLIS.map((c) => c.bin), path: agentPath } })) {
      const sandboxTools = h.missing.filter((t) => t === "bwrap" || t === "prlimit");
      if (!h.ok) {
        add({
          name: `ssh host ${h.name}`,
          status: "fail",
          detail: h.error ?? "unreachable",
          fix: "check its address, user, key and host key fingerprint in SSH_HOSTS_FILE, and that it answers `ssh -i <key> <user>@<address> true`",
        });
      } else if (sandboxTools.length > 0 && config.localSandbox === "bwrap") {
        add({
          name: `ssh host ${h.name}`,
          status: "fail",
          detail: `reachable, but ${sandboxTools.join(" and ")} missing: the worker refuses to run agents there`,
          fix: "on the host: apt-get install -y bubblewrap util-linux",
        });
      } else {
        add({ name: `ssh host ${h.name}`, status: "ok", detail: `reachable; node and git there; ${h.active ?? 0} of ${h.slots} slots in use` });
      }
      if (h.ok && h.agentVersions) {
        const found: Record<string, FoundVersion> = {};
        for (const [bin, said] of Object.entries(h.agentVersions))
          found[bin] = said === null ? null : (parseCliVersion(said) ?? { unreadable: said.slice(0, 120) || "no output" });
        reportAgentVersions(
          `ssh host ${h.name}`,
          found,
          config.defaultAgent,
          add,
          (cli, pinned) => `on the host: npm install -g ${cli.pkg}@${pinned} (or run ansible/provision.yml, which installs agent-clis/ as pinned)`,
        );
      }
    }
  } finally {
    await backend.close();
  }
}
