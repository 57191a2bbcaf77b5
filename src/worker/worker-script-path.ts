import { fileURLToPath } from "node:url";

/**
 * Absolute path of the worker script (worker/agent-work-worker.mjs at the repository root).
 * src/worker/ and dist/worker/ sit at the same depth, so one relative URL serves both the sources
 * (vitest, tsx) and the build output.
 */
export const workerScriptPath: string = fileURLToPath(new URL("../../worker/agent-work-worker.mjs", import.meta.url));
