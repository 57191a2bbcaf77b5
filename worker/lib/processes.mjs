// What the worker's own processes share: the children a stop must take down, and the little state
// a signal handler needs.
import fs from "node:fs";
import path from "node:path";

export const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

/** Children the worker started that a SIGTERM must take down (git runs, the agent's group). */
export const children = new Set();
export const runtime = { privateDir: null, agentPid: null, baseSha: undefined };

export function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

export function findTool(name) {
  for (const dir of (process.env.PATH || DEFAULT_PATH).split(":")) {
    if (!path.isAbsolute(dir)) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not in this folder
    }
  }
  return null;
}

/**
 * A private folder for the worker's secrets and its git directory's credential helper. /dev/shm
 * keeps the token off disk; bwrap gives the agent its own empty /dev and /tmp, so neither location
 * is visible from inside the sandbox.
 */
export function makePrivateDir() {
  for (const base of ["/dev/shm", process.env.TMPDIR || "/tmp"]) {
    try {
      const dir = fs.mkdtempSync(path.join(base, "agent-work-"));
      fs.chmodSync(dir, 0o700);
      return dir;
    } catch {
      // try the next location
    }
  }
  throw new Error("cannot create a private directory in /dev/shm or the temp dir");
}

export function removePrivateDir() {
  if (runtime.privateDir) fs.rmSync(runtime.privateDir, { recursive: true, force: true });
}
