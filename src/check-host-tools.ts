import { spawnSync } from "node:child_process";
import type { ControllerConfig } from "./config/env.js";

/**
 * The local backend needs git (the worker clones and pushes) and, with the default sandbox,
 * bubblewrap. Missing ones are named with the command that installs them, before any job fails.
 */
export function missingHostTools(config: Pick<ControllerConfig, "localSandbox">): string[] {
  const missing: string[] = [];
  const has = (bin: string) => !spawnSync(bin, ["--version"], { stdio: "ignore" }).error;
  if (!has("git")) missing.push("git is not installed (apt-get install -y git); the worker clones and pushes with it");
  if (config.localSandbox === "bwrap" && !has("bwrap")) {
    missing.push(
      "bubblewrap is not installed (apt-get install -y bubblewrap); the local backend runs the agent under it. " +
        "LOCAL_SANDBOX=none runs the agent unsandboxed instead, as your user, able to read your files",
    );
  }
  return missing;
}
