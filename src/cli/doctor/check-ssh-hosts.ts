import type { ControllerConfig } from "../../config/env.js";
import type { DoctorCheck } from "./doctor-check.js";

/** Each host in SSH_HOSTS_FILE, logged in to with its key and pinned host key, and asked for the worker's tools. */
export async function checkSshHosts(config: Pick<ControllerConfig, "sshHostsFile" | "localSandbox">, add: (check: DoctorCheck) => void): Promise<void> {
  const [{ ssh }, { loadSshHosts }] = await Promise.all([import("../../backends/ssh/ssh-backend.js"), import("../../backends/ssh/load-ssh-hosts.js")]);
  let backend;
  try {
    const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, child: () => quiet };
    backend = ssh.create({ hosts: loadSshHosts(config.sshHostsFile!), log: quiet as never });
  } catch (err) {
    add({ name: "ssh hosts", status: "fail", detail: err instanceof Error ? err.message : String(err), fix: "fix SSH_HOSTS_FILE (.env.example describes each field)" });
    return;
  }
  try {
    for (const h of await backend.checkHealth()) {
      const sandboxTools = h.missing.filter((t) => t === "bwrap" || t === "prlimit");
      if (!h.ok) {
        add({ name: `ssh host ${h.name}`, status: "fail", detail: h.error ?? "unreachable", fix: "check its address, user, key and host key fingerprint in SSH_HOSTS_FILE, and that it answers `ssh -i <key> <user>@<address> true`" });
      } else if (sandboxTools.length > 0 && config.localSandbox === "bwrap") {
        add({ name: `ssh host ${h.name}`, status: "fail", detail: `reachable, but ${sandboxTools.join(" and ")} missing: the worker refuses to run agents there`, fix: "on the host: apt-get install -y bubblewrap util-linux" });
      } else {
        add({ name: `ssh host ${h.name}`, status: "ok", detail: `reachable; node and git there; ${h.active ?? 0} of ${h.slots} slots in use` });
      }
    }
  } finally {
    await backend.close();
  }
}
