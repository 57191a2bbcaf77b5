import type { NodeSSH } from "node-ssh";
import { remoteExecOk } from "./remote-exec.js";
import { checkRemoteWorkDir } from "./remote-work-dir.js";
import { shellQuote } from "./shell-quote.js";
import { stopCommand } from "./stop-remote-worker.js";

/**
 * Teardown of one job on a host: stops whatever still runs in its folder, then removes the folder.
 * A folder that is already gone is success. Permissions are reset first: an agent may leave
 * read-only folders (Go's module cache does), which `rm -rf` cannot empty.
 */
export async function removeRemoteWorkDir(conn: NodeSSH, workDir: string, options: { graceMs?: number } = {}): Promise<void> {
  const dir = shellQuote(checkRemoteWorkDir(workDir));
  await remoteExecOk(
    conn,
    `${stopCommand(workDir, options.graceMs ?? 5000)} && { [ ! -e ${dir} ] || { chmod -R u+rwX -- ${dir} 2>/dev/null; rm -rf -- ${dir}; }; } && [ ! -e ${dir} ]`,
    "removing the work dir",
  );
}
