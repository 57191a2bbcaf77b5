/**
 * `agent-work doctor`: checks what this configuration uses — the store, the GitHub App and its
 * webhook, the sandbox on this machine, each enabled backend — reporting each result as it comes
 * (a slow cloud call shows where it is), and for each problem the command or setting that fixes
 * it. Read-only: it creates nothing and never prints a secret.
 */
import { AGENT_CLIS_IMAGE_LABEL, PINNED_AGENT_CLIS, readPinnedVersions } from "../../agents/agent-cli-versions.js";
import { loadControllerConfig } from "../../config/env.js";
import { checkGitHubApp } from "./check-github-app.js";
import type { CloudRunDoctorDeps } from "./check-cloudrun.js";
import type { GceDoctorDeps } from "./check-gce.js";
import { localAgentVersions, reportAgentVersions } from "./check-agent-clis.js";
import { checkSandbox } from "./check-sandbox.js";
import { checkStore } from "./check-store.js";
import type { DoctorCheck, DoctorReport, DoctorStatus } from "./doctor-check.js";

export interface DoctorDeps {
  /** Each result as soon as it is known. */
  onCheck?: (check: DoctorCheck) => void;
  /** Each section as it starts, e.g. "the GitHub App". */
  onSection?: (title: string) => void;
  gce?: GceDoctorDeps;
  cloudrun?: CloudRunDoctorDeps;
  /** The local sandbox check (tests swap in a bubblewrap that cannot work). */
  sandbox?: typeof checkSandbox;
  /** Where the worker looks for the agent CLIs, here and on ssh hosts (default /usr/local/bin:/usr/bin:/bin). */
  agentPath?: string;
}

export async function runDoctor(env: Record<string, string | undefined>, deps: DoctorDeps = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const add = (check: DoctorCheck) => {
    checks.push(check);
    deps.onCheck?.(check);
  };
  const section = (title: string) => deps.onSection?.(`checking ${title}`);
  const done = (): DoctorReport => ({ ok: checks.every((c) => c.status !== "fail"), checks });

  section("the configuration");
  const loaded = loadControllerConfig(env);
  if (!loaded.ok) {
    for (const error of loaded.errors)
      add({ name: "configuration", status: "fail", detail: error, fix: "fix the variable as the message says (see .env.example)" });
    return done();
  }
  const { config } = loaded;
  const enabled = [
    ...(config.localBackend !== false ? ["local"] : []),
    ...(config.sshHostsFile ? ["ssh"] : []),
    ...(config.gce ? ["gce"] : []),
    ...(config.k8s ? ["k8s"] : []),
    ...(config.cloudrun ? ["cloudrun"] : []),
  ];
  add({
    name: "configuration",
    status: "ok",
    detail: `valid; backends ${enabled.join(", ")}; store ${config.databaseUrl ? "PostgreSQL (DATABASE_URL)" : `SQLite in ${config.dataDir}`}`,
  });
  for (const warning of loaded.warnings) add({ name: "configuration", status: "warn", detail: warning });

  section("the store");
  await checkStore(config, add);
  section("the GitHub App and its webhook");
  await checkGitHubApp(config, add);
  section("the local backend's sandbox");
  if (config.localBackend !== false) {
    (deps.sandbox ?? checkSandbox)(config, add);
    section("the agent CLIs on this machine");
    reportAgentVersions(
      "local",
      localAgentVersions(deps.agentPath),
      config.defaultAgent,
      add,
      (cli, pinned) => `npm install -g ${cli.pkg}@${pinned} (it must land in /usr/local/bin or /usr/bin, where the worker looks)`,
    );
  }
  if (config.sshHostsFile) {
    section("the ssh hosts");
    const { checkSshHosts } = await import("./check-ssh-hosts.js");
    await checkSshHosts(config, add, deps.agentPath);
  }
  if (config.gce) {
    section("the gce backend");
    // Imported on use: the Google Cloud clients take a second to load.
    const { checkGce } = await import("./check-gce.js");
    await checkGce({ ...config, gce: config.gce }, deps.gce ?? {}, add);
  }
  if (config.k8s) {
    section("the k8s backend");
    const { checkK8s } = await import("./check-k8s.js");
    await checkK8s(config.k8s, add, env);
    // The cluster's API shows no image's files or labels, and doctor pulls no image: say so plainly.
    const pinned = readPinnedVersions();
    add({
      name: `k8s image ${config.k8s.image}: agent CLIs`,
      status: "skip",
      detail: `doctor cannot see which agent CLIs the worker image holds (the Kubernetes API shows no image's contents); k8s/worker.Dockerfile installs the pinned ${PINNED_AGENT_CLIS.map((c) => `${c.bin} ${pinned[c.pkg]}`).join(", ")} and labels the image ${AGENT_CLIS_IMAGE_LABEL} with them`,
      fix: `docker buildx imagetools inspect --format '{{ index .Image.Config.Labels "${AGENT_CLIS_IMAGE_LABEL}" }}' ${config.k8s.image}`,
    });
  }
  if (config.cloudrun) {
    section("the cloudrun backend");
    const { checkCloudRun } = await import("./check-cloudrun.js");
    await checkCloudRun(config.cloudrun, deps.cloudrun ?? {}, add);
  }
  return done();
}

const MARK: Record<DoctorStatus, string> = { ok: "ok  ", warn: "warn", fail: "FAIL", skip: "skip" };

/** One result for a terminal, with its fix when it is not ok. */
export function formatDoctorLine(c: DoctorCheck): string {
  return [`${MARK[c.status]}  ${c.name}: ${c.detail}`, ...(c.fix && c.status !== "ok" ? [`      → ${c.fix}`] : [])].join("\n");
}

export function formatDoctorSummary(report: DoctorReport): string {
  const failed = report.checks.filter((c) => c.status === "fail").length;
  const warned = report.checks.filter((c) => c.status === "warn").length;
  if (failed === 0) return `agent-work doctor: everything checked is in place${warned ? ` (${warned} warning${warned === 1 ? "" : "s"})` : ""}.`;
  return `agent-work doctor: ${failed} problem${failed === 1 ? "" : "s"} to fix.`;
}

/** The whole report at once (lines, then the summary). */
export function formatDoctorReport(report: DoctorReport): string {
  return [...report.checks.map(formatDoctorLine), formatDoctorSummary(report)].join("\n");
}
