import { describe, expect, it } from "vitest";
import { agentEnvironment, agentSandbox, MODEL_KEY_PLACEHOLDER, presetModelHosts } from "../../src/worker/agent-sandbox.js";

const controller = {
  localSandbox: "bwrap" as const,
  sandboxRoBinds: ["/opt/agents"],
  sandboxCeilings: { memoryMb: 4096, maxProcesses: 512, maxDiskMb: 10240 },
};

describe("the sandbox a job's agent gets", () => {
  it("is bubblewrap with the network and the controller's ceilings when the repository asks for nothing", () => {
    expect(agentSandbox(controller, {})).toEqual({
      kind: "bwrap",
      roBinds: ["/opt/agents"],
      shareNet: true,
      limits: { memoryMb: 4096, maxProcesses: 512, maxDiskMb: 10240 },
    });
  });

  it("takes the repository's lower limits and no network, and never more than a ceiling", () => {
    expect(agentSandbox(controller, { network: "none", memoryMb: 1024, maxProcesses: 64, maxDiskMb: 99_999 })).toMatchObject({
      shareNet: false,
      limits: { memoryMb: 1024, maxProcesses: 64, maxDiskMb: 10240 },
    });
  });

  it("takes the controller's NETWORK_DEFAULT when the repository names no network, and the repository's choice over it", () => {
    const allowing = { ...controller, networkDefault: "allowlist" as const, networkAllowDefault: ["registry.npmjs.org"] };
    expect(agentSandbox(allowing, {})).toMatchObject({ shareNet: false, egress: { allow: ["registry.npmjs.org"] } });
    expect(agentSandbox(allowing, { allow: ["api.example.com"] })).toMatchObject({
      shareNet: false,
      egress: { allow: ["registry.npmjs.org", "api.example.com"] },
    });
    expect(agentSandbox(allowing, { network: "full" })).toMatchObject({ shareNet: true });
    expect(agentSandbox(allowing, { network: "full" })).not.toHaveProperty("egress");
    expect(agentSandbox({ ...controller, networkDefault: "none" }, {})).toMatchObject({ shareNet: false });
    expect(agentSandbox({ ...controller, networkDefault: "none" }, {})).not.toHaveProperty("egress");
  });

  it("lets an allow-listed agent reach its preset's model API without the repository naming it: the base URL's host, else the vendor's", () => {
    expect(presetModelHosts("claude-code", {})).toEqual(["api.anthropic.com"]);
    expect(presetModelHosts("claude-code", { ANTHROPIC_BASE_URL: "https://llm-gateway.example.com/anthropic" })).toEqual(["llm-gateway.example.com"]);
    expect(presetModelHosts("claude-code", { ANTHROPIC_BASE_URL: "http://127.0.0.1:8089" })).toEqual(["127.0.0.1:8089"]);
    expect(presetModelHosts("codex", {})).toEqual(["api.openai.com"]);
    expect(presetModelHosts("codex", { OPENAI_BASE_URL: "not a url" })).toEqual(["api.openai.com"]);
    // The provider is the model's business: the operator names it.
    expect(presetModelHosts("opencode", {})).toEqual([]);
    expect(presetModelHosts("aider", {})).toEqual([]);
    expect(presetModelHosts("command", {})).toEqual([]);
    expect(agentSandbox({ ...controller, agentEnv: {} }, { agent: "claude-code", network: "allowlist", allow: ["registry.npmjs.org"] })).toMatchObject({
      egress: { allow: ["registry.npmjs.org", "api.anthropic.com"] },
    });
    // With MODEL_PROXY the proxied host is the model's, and the only one added.
    const proxy = { host: "api.anthropic.com", header: "x-api-key", variable: "ANTHROPIC_API_KEY", upstream: "https://api.anthropic.com", value: "sk-x" };
    expect(
      agentSandbox(
        { ...controller, agentEnv: { ANTHROPIC_BASE_URL: "http://api.anthropic.com" }, modelProxy: proxy },
        { agent: "claude-code", network: "allowlist" },
      ),
    ).toMatchObject({ egress: { allow: ["api.anthropic.com"] } });
  });

  it("hands the proxy every credential rule (MODEL_PROXY and EGRESS_CREDENTIALS), allows their hosts, and gives the agent placeholders for their variables", () => {
    const proxy = { host: "api.anthropic.com", header: "x-api-key", variable: "ANTHROPIC_API_KEY", upstream: "https://api.anthropic.com", value: "sk-model" };
    const registry = {
      host: "registry.example.com",
      header: "authorization",
      variable: "REGISTRY_AUTH",
      upstream: "https://registry.example.com",
      value: "Bearer npm_x",
    };
    const full = {
      ...controller,
      modelProxy: proxy,
      egressCredentials: [registry],
      agentEnv: { ANTHROPIC_API_KEY: "sk-model", REGISTRY_AUTH: "Bearer npm_x", PATH: "/usr/bin" },
    };
    const sandbox = agentSandbox(full, { agent: "claude-code", network: "allowlist" });
    expect(sandbox).toMatchObject({
      egress: {
        allow: ["api.anthropic.com", "registry.example.com"],
        credentials: [
          { host: "api.anthropic.com", header: "x-api-key", value: "sk-model" },
          { host: "registry.example.com", header: "authorization", value: "Bearer npm_x" },
        ],
      },
    });
    expect(agentEnvironment(full, sandbox)).toEqual({ ANTHROPIC_API_KEY: MODEL_KEY_PLACEHOLDER, REGISTRY_AUTH: MODEL_KEY_PLACEHOLDER, PATH: "/usr/bin" });
    // A credential variable the operator did not pass through is not invented for the agent.
    expect(agentEnvironment({ ...full, agentEnv: { PATH: "/usr/bin" } }, sandbox)).toEqual({ ANTHROPIC_API_KEY: MODEL_KEY_PLACEHOLDER, PATH: "/usr/bin" });
    // Under network: full there is no proxy to add them: the agent's environment is the operator's.
    expect(agentEnvironment(full, agentSandbox(full, { network: "full" }))).toEqual(full.agentEnv);
  });

  it("is no sandbox at all only when the controller opted out", () => {
    expect(agentSandbox({ ...controller, localSandbox: "none" }, { network: "none" })).toEqual({ kind: "none" });
  });
});
