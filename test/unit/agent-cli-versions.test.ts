import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

describe("the agent CLIs' versions", () => {
  const list = JSON.parse(read("agent-clis/package.json")) as { dependencies: Record<string, string> };
  const lock = JSON.parse(read("agent-clis/package-lock.json")) as { packages: Record<string, { version?: string; dependencies?: Record<string, string> }> };

  it("are one list, pinned exactly, and locked at those versions", () => {
    expect(Object.keys(list.dependencies).sort()).toEqual(["@anthropic-ai/claude-code", "@openai/codex", "opencode-ai"]);
    for (const [pkg, version] of Object.entries(list.dependencies)) {
      expect(version, pkg).toMatch(/^\d+\.\d+\.\d+$/);
      expect(lock.packages[`node_modules/${pkg}`]?.version, pkg).toBe(version);
    }
    expect(lock.packages[""]!.dependencies).toEqual(list.dependencies);
  });

  it("are what the container images and the Ansible role install, from that list and nothing else", () => {
    for (const file of ["Dockerfile", "k8s/worker.Dockerfile"]) {
      const text = read(file);
      expect(text, file).toMatch(/^COPY agent-clis\/package\.json agent-clis\/package-lock\.json \/usr\/local\/lib\/agent-clis\/$/m);
      expect(text, file).toContain("npm install --no-save --prefix /usr/local/lib/agent-clis");
      expect(text, file).not.toMatch(/npm (i|install) (-g|--global)/);
    }
    const tasks = YAML.parse(read("ansible/roles/worker/tasks/main.yml")) as Array<Record<string, any>>;
    const copy = tasks.find((t) => t.name === "Agent CLIs, the pinned list")!;
    expect(copy.loop).toEqual(["package.json", "package-lock.json"]);
    expect(tasks.find((t) => t.name === "Agent CLIs, installed exactly as locked")!["ansible.builtin.command"].cmd).toContain("npm install --no-save --prefix");
    const defaults = YAML.parse(read("ansible/roles/worker/defaults/main.yml")) as Record<string, string>;
    // role_path is ansible/roles/worker: three levels up is the checkout.
    expect(path.resolve(ROOT, "ansible/roles/worker", defaults.agent_clis_source!.replace("{{ role_path }}/", ""))).toBe(path.join(ROOT, "agent-clis"));
  });
});

describe("reading a CLI's version (doctor)", () => {
  it("finds it in each CLI's --version answer, and nothing in noise", async () => {
    const { parseCliVersion, versionFromImageLabel } = await import("../../src/agents/agent-cli-versions.js");
    expect(parseCliVersion("2.1.332 (Claude Code)\n")).toBe("2.1.332");
    expect(parseCliVersion("codex-cli 0.171.0\n")).toBe("0.171.0");
    expect(parseCliVersion("1.18.33\n")).toBe("1.18.33");
    expect(parseCliVersion("1.19.0-beta.2\n")).toBe("1.19.0-beta.2");
    expect(parseCliVersion("command not found")).toBeNull();
    // Bounded: a version past the first 500 characters is not looked for.
    expect(parseCliVersion(`${"x".repeat(600)} 1.2.3`)).toBeNull();
    expect(versionFromImageLabel("2_1_332")).toBe("2.1.332");
    for (const junk of [undefined, "", "2.1.332", "2_1", "latest", "2_1_332_extra"]) expect(versionFromImageLabel(junk), String(junk)).toBeNull();
  });
});
