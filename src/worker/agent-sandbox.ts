import type { ControllerConfig } from "../config/env.js";
import type { RepoConfig } from "../config/repo-config.js";
import type { WorkerInput } from "./protocol.js";

/**
 * The sandbox a job's agent runs in, from the controller's settings and the repository's: the
 * repository may ask for no network and for lower limits, never for more than the controller's
 * ceilings (a job recorded before a ceiling was lowered is clamped here too).
 */
export function agentSandbox(
  controller: Pick<ControllerConfig, "localSandbox" | "sandboxRoBinds" | "sandboxCeilings">,
  repo: Partial<Pick<RepoConfig, "network" | "memoryMb" | "maxProcesses" | "maxDiskMb">>,
): WorkerInput["sandbox"] {
  if (controller.localSandbox === "none") return { kind: "none" };
  const ceilings = controller.sandboxCeilings;
  const lower = (asked: number | undefined, ceiling: number) => Math.min(asked ?? ceiling, ceiling);
  return {
    kind: "bwrap",
    roBinds: controller.sandboxRoBinds,
    shareNet: repo.network !== "none",
    limits: {
      memoryMb: lower(repo.memoryMb, ceilings.memoryMb),
      maxProcesses: lower(repo.maxProcesses, ceilings.maxProcesses),
      maxDiskMb: lower(repo.maxDiskMb, ceilings.maxDiskMb),
    },
  };
}
