import type { NodeSSH } from "node-ssh";
import { remoteExecOk } from "./remote-exec.js";
import { checkRemoteWorkDir, REMOTE_PID_FILE, REMOTE_STOP_FILE } from "./remote-work-dir.js";
import { shellQuote } from "./shell-quote.js";

/**
 * Stops everything a job runs in `$1` on the host: first the worker's process group from the
 * pidfile (SIGTERM, so the worker script can kill its agent and say so; SIGKILL after `$2` tenths
 * of a second), then any process still working inside the folder — an agent started without
 * bubblewrap sits in a session of its own and outlives its worker's group. Closing the SSH channel
 * would do none of this: a remote command without a PTY gets no SIGHUP.
 *
 * The script is a constant; the folder and the grace period reach it as positional arguments.
 */
const STOP_SCRIPT = `
set -u
[ -d "$1" ] || exit 0
d=$(cd -P -- "$1" && pwd -P) || exit 0
ticks=$2
: > "$d/${REMOTE_STOP_FILE}" 2>/dev/null || true
inside() {
  for e in /proc/[0-9]*; do
    c=$(readlink "$e/cwd" 2>/dev/null) || continue
    case "$c" in "$d"|"$d"/*) printf '%s\\n' "\${e#/proc/}" ;; esac
  done
}
pg=$(cat "$d/${REMOTE_PID_FILE}" 2>/dev/null) || pg=
case "$pg" in ''|*[!0-9]*|0|1) pg= ;; esac
if [ -n "$pg" ] && [ -e "/proc/$pg" ]; then
  # The leader still runs: signal its group only if it is ours, not a stale pidfile naming a reused pid.
  c=$(readlink "/proc/$pg/cwd" 2>/dev/null) || c=
  case "$c" in "$d"|"$d"/*) ;; *) pg= ;; esac
fi
if [ -n "$pg" ] && kill -TERM -- "-$pg" 2>/dev/null; then
  i=0
  while [ "$i" -lt "$ticks" ] && kill -0 -- "-$pg" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
  kill -KILL -- "-$pg" 2>/dev/null
fi
for round in 1 2 3 4 5; do
  left=$(inside)
  [ -z "$left" ] && exit 0
  kill -KILL $left 2>/dev/null
  sleep 0.1
done
left=$(inside)
[ -z "$left" ] || { echo "still running in $d: $left" >&2; exit 1; }
`;

export function stopCommand(workDir: string, graceMs: number): string {
  const ticks = Math.max(0, Math.ceil(graceMs / 100));
  return `sh -c ${shellQuote(STOP_SCRIPT)} sh ${shellQuote(checkRemoteWorkDir(workDir))} ${ticks}`;
}

/** Stops every process of the job in `workDir` on the host; a folder that is gone is success. */
export async function stopRemoteWorker(conn: NodeSSH, workDir: string, options: { graceMs?: number } = {}): Promise<void> {
  await remoteExecOk(conn, stopCommand(workDir, options.graceMs ?? 5000), "stopping the worker");
}
