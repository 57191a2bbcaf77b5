import { describe, expect, it } from "vitest";
import { agentSandbox } from "../../src/worker/agent-sandbox.js";

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
    expect(agentSandbox(allowing, { allow: ["api.example.com"] })).toMatchObject({ shareNet: false, egress: { allow: ["registry.npmjs.org", "api.example.com"] } });
    expect(agentSandbox(allowing, { network: "full" })).toMatchObject({ shareNet: true });
    expect(agentSandbox(allowing, { network: "full" })).not.toHaveProperty("egress");
    expect(agentSandbox({ ...controller, networkDefault: "none" }, {})).toMatchObject({ shareNet: false });
    expect(agentSandbox({ ...controller, networkDefault: "none" }, {})).not.toHaveProperty("egress");
  });

  it("is no sandbox at all only when the controller opted out", () => {
    expect(agentSandbox({ ...controller, localSandbox: "none" }, { network: "none" })).toEqual({ kind: "none" });
  });
});
