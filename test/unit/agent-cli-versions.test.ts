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
