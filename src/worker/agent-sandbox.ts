import type { ControllerConfig } from "../config/env.js";
import type { RepoConfig } from "../config/repo-config.js";
import type { WorkerInput } from "./protocol.js";

/** What the agent is given in place of the model key when the worker's proxy adds the real one. */
export const MODEL_KEY_PLACEHOLDER = "agent-work-proxy-adds-the-real-key";

/**
 * The sandbox a job's agent runs in, from the controller's settings and the repository's: the
 * repository may ask for no network, an allow-list, and lower limits, never for more than the
 * controller's ceilings (a job recorded before a ceiling was lowered is clamped here too).
 */
export function agentSandbox(
  controller: Pick<ControllerConfig, "localSandbox" | "sandboxRoBinds" | "sandboxCeilings"> &
    Partial<Pick<ControllerConfig, "networkDefault" | "networkAllowDefault" | "modelProxy" | "egressCredentials" | "agentEnv">>,
  repo: Partial<Pick<RepoConfig, "agent" | "network" | "allow" | "memoryMb" | "maxProcesses" | "maxDiskMb">>,
): WorkerInput["sandbox"] {
  if (controller.localSandbox === "none") return { kind: "none" };
  const ceilings = controller.sandboxCeilings;
  const lower = (asked: number | undefined, ceiling: number) => Math.min(asked ?? ceiling, ceiling);
  // A repository that names no network gets the controller's default.
  const network = repo.network ?? controller.networkDefault ?? "full";
  const sandbox: WorkerInput["sandbox"] = {
    kind: "bwrap",
    roBinds: controller.sandboxRoBinds,
    shareNet: network === "full",
    limits: {
      memoryMb: lower(repo.memoryMb, ceilings.memoryMb),
      maxProcesses: lower(repo.maxProcesses, ceilings.maxProcesses),
      maxDiskMb: lower(repo.maxDiskMb, ceilings.maxDiskMb),
    },
  };
  if (network === "allowlist") {
    const proxy = controller.modelProxy;
    const model = proxy ? [proxy.host] : presetModelHosts(repo.agent, controller.agentEnv ?? {});
    const rules = [...(proxy ? [proxy] : []), ...(controller.egressCredentials ?? [])];
    const allow = [...new Set([...(controller.networkAllowDefault ?? []), ...(repo.allow ?? []), ...model, ...rules.map((r) => r.host)])];
    sandbox.egress = {
      allow,
      ...(rules.length > 0 ? { credentials: rules.map((r) => ({ host: r.host, upstream: r.upstream, header: r.header, value: r.value })) } : {}),
    };
  }
  return sandbox;
}

/**
 * The model API host a preset's CLI calls, so an allow-list need not name it: the host of the base
 * URL the controller passes the agent (ANTHROPIC_BASE_URL, OPENAI_BASE_URL), else the vendor's.
 * opencode and aider reach whichever provider their model names, and a custom command anything:
 * for those the operator lists the host (NETWORK_ALLOW_DEFAULT, MODEL_PROXY) or the repository does.
 */
export function presetModelHosts(agent: RepoConfig["agent"] | undefined, agentEnv: Record<string, string>): string[] {
  const hostOf = (variable: string, fallback: string) => {
    const raw = agentEnv[variable];
    if (raw === undefined || !URL.canParse(raw)) return fallback;
    const url = new URL(raw);
    return url.port ? `${url.hostname}:${url.port}` : url.hostname;
  };
  if (agent === "claude-code") return [hostOf("ANTHROPIC_BASE_URL", "api.anthropic.com")];
  if (agent === "codex") return [hostOf("OPENAI_BASE_URL", "api.openai.com")];
  return [];
}

/**
 * The agent's environment: the controller's pass-through list, except that under an allow-list
 * with MODEL_PROXY the model key's variable holds a placeholder (the proxy adds the real key), and
 * so does any passed-through variable an EGRESS_CREDENTIALS rule adds instead.
 */
export function agentEnvironment(
  controller: Pick<ControllerConfig, "agentEnv"> & Partial<Pick<ControllerConfig, "modelProxy" | "egressCredentials">>,
  sandbox: WorkerInput["sandbox"],
): Record<string, string> {
  const env = { ...controller.agentEnv };
  if (sandbox.kind !== "bwrap" || !sandbox.egress) return env;
  const proxy = controller.modelProxy;
  if (proxy) env[proxy.variable] = MODEL_KEY_PLACEHOLDER;
  // Another credential's variable reaches the agent only if it was passed through, and then as a placeholder.
  for (const rule of controller.egressCredentials ?? []) if (rule.variable in env) env[rule.variable] = MODEL_KEY_PLACEHOLDER;
  return env;
}
