import { writeFileSync } from "node:fs";

/**
 * Gives the calling OS thread a name (Linux: at most 15 bytes), so that `top -H`, `ps -L` and
 * /proc/<pid>/task/<tid>/comm tell the controller's threads apart — every one is "node" otherwise.
 * bench/bench-processes.ts reads it to split the controller's CPU time by thread. Elsewhere, or if
 * the kernel refuses, the thread simply keeps its name.
 */
export function nameThisThread(name: string): void {
  try {
    writeFileSync("/proc/thread-self/comm", name.slice(0, 15));
  } catch {
    // Not Linux, or /proc is not mounted: the name is only a convenience.
  }
}

/** The names the controller's own threads take (the main thread keeps Node's; the WAL checkpointer, src/store/wal-checkpointer.ts, is "aw-checkpoints"). */
export const THREAD_NAMES = { webhooks: "aw-webhooks" } as const;
