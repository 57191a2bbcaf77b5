import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Sqlite from "better-sqlite3";

/**
 * The embedded store's WAL checkpoints, on a thread of their own. SQLite copies the write-ahead log
 * back into the database file every 1,000 pages by default, inside whichever commit crosses that
 * line, and syncs both files: under a burst that was a 10–20 ms stall of the event loop every few
 * seconds, landing on a webhook delivery's write as often as not (bench/ingest.ts: the webhook
 * path's p99 at 100 deliveries a second went from ~16 ms to ~10 ms without it). Here the controller's
 * connection never checkpoints (`wal_autocheckpoint = 0`) and a second connection, in a worker
 * thread, makes a PASSIVE checkpoint every `intervalMs`: it copies what no reader still needs
 * and never waits for, nor blocks, the writer. The next commit after a complete checkpoint starts
 * the log from its beginning again, so the file does not grow.
 *
 * If the thread fails, the controller's connection checkpoints by itself again, as SQLite does.
 */
export interface WalCheckpointer {
  stop(): Promise<void>;
}

/** The thread's whole program (CommonJS, run with `eval`, so it needs no file of its own in dist/ or src/). */
const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
try { require("node:fs").writeFileSync("/proc/thread-self/comm", workerData.threadName); } catch {}
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma("busy_timeout = 1000");
const checkpoint = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch (err) {
    // Busy or locked: the next round tries again.
    if (!/busy|locked/i.test(String(err && err.message))) throw err;
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", (message) => {
  if (message !== "stop") return;
  clearInterval(timer);
  try { checkpoint(); } finally { db.close(); parentPort.close(); }
});
`;

export function startWalCheckpointer(
  sqlite: Sqlite.Database,
  file: string,
  options: { intervalMs?: number; onError?: (err: Error) => void } = {},
): WalCheckpointer {
  sqlite.pragma("wal_autocheckpoint = 0");
  const worker = new Worker(THREAD, {
    eval: true,
    workerData: { file, module: createRequire(import.meta.url).resolve("better-sqlite3"), intervalMs: options.intervalMs ?? 500, threadName: "aw-checkpoints" },
  });
  // Never what keeps the process alive.
  worker.unref();
  let stopped = false;
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  worker.once("error", (err) => {
    if (stopped) return;
    // Back to SQLite's own checkpoints on the controller's connection.
    if (sqlite.open) sqlite.pragma("wal_autocheckpoint = 1000");
    options.onError?.(err);
  });
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      worker.postMessage("stop");
      const timer = setTimeout(() => void worker.terminate(), 2_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
