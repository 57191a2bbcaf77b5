/**
 * A view of the host's processes from /proc, independent of the code under test: used to prove
 * that no process holds a secret in its argv or environment, and that nothing a run started is
 * still alive after it ends. Zombies count as dead (the test host's PID 1 may never reap them).
 */
import { readdir, readFile, readlink } from "node:fs/promises";

export interface HostProcess {
  pid: number;
  pgid: number;
  state: string;
  cmdline: string;
  environ: string;
  cwd: string | null;
}

async function read(file: string): Promise<string> {
  try {
    return (await readFile(file, "latin1")).replaceAll("\0", " ");
  } catch {
    return "";
  }
}

async function processInfo(pid: number): Promise<HostProcess | null> {
  const stat = await read(`/proc/${pid}/stat`);
  if (!stat) return null;
  // "pid (comm) state ppid pgrp ..."; comm may itself contain spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => null);
  return {
    pid,
    state: fields[0] ?? "?",
    pgid: Number(fields[2]),
    cmdline: await read(`/proc/${pid}/cmdline`),
    environ: await read(`/proc/${pid}/environ`),
    cwd,
  };
}

/** Every live (non-zombie) process on this machine except the caller. */
export async function hostProcesses(): Promise<HostProcess[]> {
  const pids = (await readdir("/proc"))
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => p !== process.pid);
  const all = await Promise.all(pids.map(processInfo));
  return all.filter((p): p is HostProcess => p !== null && p.state !== "Z" && p.state !== "X");
}

/** Live processes whose working directory, argv or environment points into `dir`. */
export async function processesUnder(dir: string): Promise<HostProcess[]> {
  return (await hostProcesses()).filter(
    (p) => (p.cwd !== null && (p.cwd === dir || p.cwd.startsWith(dir + "/"))) || p.cmdline.includes(dir) || p.environ.includes(dir),
  );
}

/** True while the process exists and is not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  const p = await processInfo(pid);
  return p !== null && p.state !== "Z" && p.state !== "X";
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 3000, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
