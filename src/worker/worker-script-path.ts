import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The worker script's folder (worker/ at the repository root): the entry file and the modules in
 * lib/ it imports, plain JavaScript with no dependencies. src/worker/ and dist/worker/ sit at the
 * same depth, so one relative URL serves both the sources (vitest, tsx) and the build output.
 */
export const workerDir: string = fileURLToPath(new URL("../../worker/", import.meta.url)).replace(/\/$/, "");

/** The entry file, run with `node` from its folder. */
export const WORKER_ENTRY = "agent-work-worker.mjs";

/** Absolute path of the worker script's entry file. */
export const workerScriptPath: string = path.join(workerDir, WORKER_ENTRY);

/** Every file of the worker script, by path relative to its folder: what a remote host is sent. */
export async function readWorkerFiles(dir: string = workerDir): Promise<Record<string, string>> {
  const files: Record<string, string> = { [WORKER_ENTRY]: await readFile(path.join(dir, WORKER_ENTRY), "utf8") };
  for (const name of (await readdir(path.join(dir, "lib"))).sort()) {
    if (name.endsWith(".mjs")) files[`lib/${name}`] = await readFile(path.join(dir, "lib", name), "utf8");
  }
  return files;
}
