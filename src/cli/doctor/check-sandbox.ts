import { missingHostTools } from "../../check-host-tools.js";
import type { ControllerConfig } from "../../config/env.js";
import type { DoctorCheck } from "./doctor-check.js";

/** The local backend on this machine: git, and a real trivial bubblewrap sandbox (the controller's own start-up check). */
export function checkSandbox(config: Pick<ControllerConfig, "localSandbox">, add: (check: DoctorCheck) => void, missing = missingHostTools): void {
  const problems = missing(config);
  for (const problem of problems) add({ name: "local backend", status: "fail", detail: problem });
  if (problems.length > 0) return;
  if (config.localSandbox === "none") {
    add({
      name: "local backend",
      status: "warn",
      detail: "LOCAL_SANDBOX=none: agents run unsandboxed, as this user, able to read everything it can",
      fix: "install bubblewrap and unset LOCAL_SANDBOX",
    });
    return;
  }
  add({ name: "local backend", status: "ok", detail: "git found; bubblewrap built a trivial sandbox here (own PID, IPC and UTS namespaces, fresh /proc)" });
}
