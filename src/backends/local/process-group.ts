import { readdir, readFile, readlink } from "node:fs/promises";

/** Sends `signal` to a whole process group; a group that is already gone is not an error. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

/** Start time of a process in clock ticks since boot (Linux /proc), or null if it is gone. */
export async function processStartTicks(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // fields after "(comm)": state is field 3, starttime is field 22
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/**
 * SIGTERM to the group, then SIGKILL if anything in it is still there after `graceMs`.
 * Resolves once the group is gone (or SIGKILL was sent).
 */
export async function stopGroup(pgid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pgid, "SIGTERM")) return;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (!signalGroup(pgid, 0)) return;
  }
  signalGroup(pgid, "SIGKILL");
}

/**
 * Pids of processes whose working directory is inside `dir`: what a run left behind when its
 * worker died before it could clean up (an agent started without bwrap keeps running otherwise).
 */
export async function processesWorkingIn(dir: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return [];
  }
  const found: number[] = [];
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
      .map(async (e) => {
        const cwd = await readlink(`/proc/${e}/cwd`).catch(() => null);
        if (cwd !== null && (cwd === dir || cwd.startsWith(dir + "/"))) found.push(Number(e));
      }),
  );
  return found;
}
