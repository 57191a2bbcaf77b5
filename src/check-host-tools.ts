import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { ControllerConfig } from "./config/env.js";
import { probeSandbox } from "./probe-sandbox.js";

/**
 * The local backend needs git (the worker clones and pushes) and, with the default sandbox,
 * bubblewrap and util-linux's prlimit (and, when the controller runs as root, setpriv and unshare,
 * with which the agent drops to nobody). Missing ones are named with the command that installs
 * them, before any job fails; LOCAL_SANDBOX=none is the only way past a missing bubblewrap. When
 * everything is there, a trivial sandbox is built for real (probe-sandbox.ts): an installed
 * bubblewrap that cannot make namespaces here fails the start, not every job.
 */
export function missingHostTools(
  config: Pick<ControllerConfig, "localSandbox"> & Partial<Pick<ControllerConfig, "localBackend">>,
  asRoot = process.getuid?.() === 0,
  sysAdmin = hasSysAdmin(),
  probe = probeSandbox,
): string[] {
  const missing: string[] = [];
  // No local backend (LOCAL_BACKEND=false): no agent and no worker script run on this machine.
  if (config.localBackend === false) return missing;
  const has = (bin: string) => !spawnSync(bin, ["--version"], { stdio: "ignore" }).error;
  if (!has("git")) missing.push("git is not installed (apt-get install -y git); the worker clones and pushes with it");
  if (config.localSandbox !== "bwrap") return missing;
  if (asRoot && !sysAdmin) {
    missing.push(
      "the controller runs as root without CAP_SYS_ADMIN (in a container?), so the sandbox cannot drop the agent to nobody; " +
        "run the controller as an unprivileged user (or LOCAL_SANDBOX=none, unsandboxed)",
    );
  }
  if (!has("bwrap")) {
    missing.push(
      "bubblewrap is not installed (apt-get install -y bubblewrap); the local backend runs the agent under it. " +
        "LOCAL_SANDBOX=none runs the agent unsandboxed instead, as your user, able to read your files",
    );
  }
  const utils = ["prlimit", ...(asRoot ? ["setpriv", "unshare"] : [])].filter((bin) => !has(bin));
  if (utils.length > 0) {
    missing.push(
      `${utils.join(", ")} not found (apt-get install -y util-linux); the sandbox limits the agent's memory and processes with ${utils.length === 1 ? "it" : "them"}`,
    );
  }
  if (missing.length === 0) {
    const failed = probe(asRoot);
    if (failed) missing.push(failed);
  }
  return missing;
}

/** CAP_SYS_ADMIN (bit 21) in this process's effective set: what bwrap needs as root without a user namespace. */
function hasSysAdmin(): boolean {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return hex !== undefined && ((BigInt(`0x${hex}`) >> 21n) & 1n) === 1n;
  } catch {
    return false;
  }
}
