// The agent step: the agent's command in its sandbox (lib/sandboxed-run.mjs), with its prompt, its
// environment and the job's time limit.
import { runSandboxed } from "./sandboxed-run.mjs";
import { DEFAULT_PATH } from "./processes.mjs";

export function fillPlaceholders(argv, prompt, promptFile) {
  // One pass, so a prompt that itself contains "{prompt_file}" is not expanded again.
  return argv.map((a) => a.replace(/\{(prompt|prompt_file)\}/g, (_, name) => (name === "prompt" ? prompt : promptFile)));
}

/**
 * The agent's environment: the dependency cache's variables (when the job has a cache), then what
 * the controller passes through, which wins.
 */
function agentEnvironment(input, layout, cacheEnv) {
  return { PATH: DEFAULT_PATH, HOME: layout.home, LANG: "C.UTF-8", ...cacheEnv, ...input.agentEnv };
}

/**
 * Runs the agent in its sandbox with `timeoutSeconds` (the job's limit, less what setup took);
 * resolves when it and everything it started are gone. `layout` is the job's paths (see
 * bwrapOptions).
 */
export function runAgent(input, plan, layout, argv, { timeoutSeconds = input.agentTimeoutSeconds, cacheEnv = {} } = {}) {
  return runSandboxed({
    plan,
    layout,
    argv,
    env: agentEnvironment(input, layout, cacheEnv),
    timeoutSeconds,
    // A CLI that reads its prompt from stdin gets the prompt file there: no argv limit (128 KiB an
    // argument) for a long discussion, and the file is the one the sandbox mounts read-only anyway.
    ...(input.promptOnStdin ? { stdinFile: layout.prompt } : {}),
  });
}
