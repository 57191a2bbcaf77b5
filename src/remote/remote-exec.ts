import type { NodeSSH } from "node-ssh";

export interface RemoteExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs one short command on the pooled connection and collects its output. Throws when the
 * connection is gone or the command ended without an exit status (the connection broke while it
 * ran): a caller cannot tell what happened on the host, so it must not take that as an answer.
 */
export async function remoteExec(conn: NodeSSH, command: string, options: { stdin?: string } = {}): Promise<RemoteExecResult> {
  const result = await conn.execCommand(command, { ...(options.stdin === undefined ? {} : { stdin: options.stdin }), noTrim: true });
  if (result.code === null && result.signal === null) {
    throw Object.assign(new Error("the SSH connection closed before the remote command finished"), { code: "ECONNRESET" });
  }
  return result;
}

/** Like remoteExec, but a non-zero exit is an error naming `what` and the command's stderr. */
export async function remoteExecOk(conn: NodeSSH, command: string, what: string, options: { stdin?: string } = {}): Promise<string> {
  const r = await remoteExec(conn, command, options);
  if (r.code !== 0)
    throw new Error(
      `${what} failed on the worker host (${r.code === null ? `signal ${r.signal}` : `exit ${r.code}`}): ${r.stderr.trim().split("\n").slice(-3).join(" | ") || "no output"}`,
    );
  return r.stdout;
}
