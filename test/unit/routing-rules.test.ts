import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { firstMatchingRule, parseRoutingRules, ruleMatches, type RoutingRule } from "../../src/config/routing-rules.js";
import { parseBackendCaps } from "../../src/config/backend-caps.js";
import { chooseBackend } from "../../src/pipeline/choose-backend.js";
import { resolveJobOptions } from "../../src/pipeline/resolve-job-options.js";
import { describeControllerConfig, loadControllerConfig } from "../../src/config/env.js";
import { parseRepoConfig } from "../../src/config/repo-config.js";

const tempDir = mkdtempSync(join(tmpdir(), "agent-work-routing-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

function rules(text: string): RoutingRule[] {
  const parsed = parseRoutingRules(text);
  if (!parsed.ok) throw new Error(parsed.errors.join("\n"));
  return parsed.rules;
}

const facts = (over: Partial<{ repoFullName: string; labels: string[]; size: string }> = {}) => ({ repoFullName: "acme/web", labels: [], ...over });

describe("routing rules", () => {
  it("read from a YAML or JSON list, or a file's `rules:`, in snake_case", () => {
    const expected = [{ label: "agent-work:large", backend: "gce" }, { repo: "acme/ml-*", backend: "ssh", sshLabels: ["gpu"] }, { backend: "local" }];
    expect(rules('[{label: "agent-work:large", backend: gce}, {repo: "acme/ml-*", backend: ssh, ssh_labels: [gpu]}, {backend: local}]')).toEqual(expected);
    expect(
      rules(JSON.stringify([{ label: "agent-work:large", backend: "gce" }, { repo: "acme/ml-*", backend: "ssh", ssh_labels: ["gpu"] }, { backend: "local" }])),
    ).toEqual(expected);
    expect(
      rules("rules:\n  - label: agent-work:large\n    backend: gce\n  - { repo: acme/ml-*, backend: ssh, ssh_labels: [gpu] }\n  - backend: local\n"),
    ).toEqual(expected);
  });

  it("report every bad rule by its number, with what would be valid", () => {
    const parsed = parseRoutingRules(
      '[{label: gpu}, {backend: cloud}, {repo: "acme", backend: local}, {size: "big one", backend: gce}, {backend: gce, ssh_labels: [gpu]}, {backend: ssh, labels: [x]}, "local"]',
    );
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.errors).toEqual([
      "rule 1: `backend` is required",
      'rule 2: unknown backend "cloud"; expected one of local, ssh, gce, k8s, cloudrun',
      'rule 3: repo "acme" is not an owner/name pattern such as "acme/*" or "acme/web"',
      'rule 4: size "big one" is not a size name such as large (letters, digits, . _ -)',
      'rule 5: ssh_labels only place jobs on ssh hosts; this rule sends jobs to "gce"',
      "rule 6: unknown key `labels` (the keys are repo, label, size, backend, ssh_labels)",
      "rule 7: expected a mapping with `backend` and any of repo, label, size, ssh_labels",
    ]);
    expect(parseRoutingRules("{backend: local}")).toMatchObject({ ok: false, errors: [expect.stringContaining("expected a list of rules")] });
    expect(parseRoutingRules("[{repo: */web, backend: local}]")).toMatchObject({ ok: false, errors: [expect.stringContaining('needs quotes: "*/infra"')] });
  });

  it("warn about rules after a catch-all, which never apply", () => {
    expect(parseRoutingRules("[{backend: local}, {label: gpu, backend: ssh}]")).toEqual({
      ok: true,
      rules: expect.any(Array),
      warnings: ["rule 1 matches every job, so the 1 after it never apply"],
    });
  });

  it("match on every condition they give: repository glob, a label of the issue, the size; case does not matter", () => {
    const rule = { repo: "acme/ml-*", label: "GPU", size: "large", backend: "ssh" };
    expect(ruleMatches(rule, facts({ repoFullName: "Acme/ml-train", labels: ["bug", "gpu"], size: "large" }))).toBe(true);
    expect(ruleMatches(rule, facts({ repoFullName: "acme/ml-train", labels: ["bug"], size: "large" }))).toBe(false);
    expect(ruleMatches(rule, facts({ repoFullName: "acme/ml-train", labels: ["gpu"] }))).toBe(false);
    expect(ruleMatches(rule, facts({ repoFullName: "acme/web", labels: ["gpu"], size: "large" }))).toBe(false);
    // `*` stays inside one path segment, and the pattern's dots are dots.
    expect(ruleMatches({ repo: "*/web", backend: "local" }, facts({ repoFullName: "acme/web" }))).toBe(true);
    expect(ruleMatches({ repo: "acme/*", backend: "local" }, facts({ repoFullName: "acme/x/y" }))).toBe(false);
    expect(ruleMatches({ repo: "acme/a.b", backend: "local" }, facts({ repoFullName: "acme/aXb" }))).toBe(false);
  });

  it("apply the first that matches", () => {
    const list = rules('[{label: "agent-work:large", backend: gce}, {repo: "acme/*", backend: ssh}, {backend: local}]');
    expect(firstMatchingRule(list, facts({ labels: ["agent-work:large"] }))).toMatchObject({ number: 1, rule: { backend: "gce" } });
    expect(firstMatchingRule(list, facts())).toMatchObject({ number: 2, rule: { backend: "ssh" } });
    expect(firstMatchingRule(list, facts({ repoFullName: "other/web" }))).toMatchObject({ number: 3, rule: { backend: "local" } });
    expect(firstMatchingRule(list.slice(0, 2), facts({ repoFullName: "other/web" }))).toBeUndefined();
  });
});

describe("which backend a job is given", () => {
  const list = rules("[{label: gpu, backend: ssh, ssh_labels: [gpu]}, {size: large, backend: gce}, {backend: k8s}]");

  it("the --backend flag, then the repository's backend, then the first matching rule, then local", () => {
    const gpu = facts({ labels: ["gpu"] });
    expect(chooseBackend({ flag: "gce", repository: "local", rules: list, facts: gpu })).toEqual({ backend: "gce", by: "flag" });
    expect(chooseBackend({ repository: "local", rules: list, facts: gpu })).toEqual({ backend: "local", by: "repository" });
    expect(chooseBackend({ rules: list, facts: gpu })).toEqual({ backend: "ssh", by: "rule", rule: "routing rule 1 (label `gpu`)", sshLabels: ["gpu"] });
    expect(chooseBackend({ rules: list, facts: facts({ size: "large" }) })).toEqual({ backend: "gce", by: "rule", rule: "routing rule 2 (size `large`)" });
    expect(chooseBackend({ rules: list, facts: facts() })).toEqual({ backend: "k8s", by: "rule", rule: "routing rule 3 (every job)" });
    expect(chooseBackend({ rules: [], facts: facts() })).toEqual({ backend: "local", by: "default" });
  });

  it("takes ssh host labels from the repository before a rule's", () => {
    expect(chooseBackend({ repoSshLabels: ["arm"], rules: list, facts: facts({ labels: ["gpu"] }) })).toMatchObject({ backend: "ssh", sshLabels: ["arm"] });
    expect(chooseBackend({ flag: "ssh", rules: list, facts: facts({ labels: ["gpu"] }) })).toEqual({ backend: "ssh", by: "flag" });
  });

  it("through intake's resolution: a size label picks by rule, the repository's own backend wins over it, a disabled pick is refused", () => {
    const limits = { defaultAgent: "claude-code" as const, defaultMaxMinutes: 30, maxMinutesCeiling: 55 };
    const config = (yaml: Record<string, unknown>) => {
      const parsed = parseRepoConfig({ sizes: { large: { machine: "e2-standard-8" } }, ...yaml }, limits);
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
      return parsed.config;
    };
    const routing = { rules: rules("[{size: large, backend: gce}, {backend: local}]"), facts: { repoFullName: "acme/web", labels: ["agent-work:large"] } };
    expect(resolveJobOptions(config({}), { size: "large" }, ["local", "gce"], routing)).toMatchObject({
      ok: true,
      config: { backend: "gce" },
      machine: "e2-standard-8",
      rule: "routing rule 1 (size `large`)",
    });
    expect(resolveJobOptions(config({}), {}, ["local", "gce"], routing)).toMatchObject({
      ok: true,
      config: { backend: "local" },
      rule: "routing rule 2 (every job)",
    });
    expect(resolveJobOptions(config({ backend: "local" }), { size: "large" }, ["local", "gce"], routing)).toEqual(
      expect.objectContaining({ ok: true, config: expect.objectContaining({ backend: "local" }) }),
    );
    expect(resolveJobOptions(config({}), { size: "large" }, ["local"], routing)).toEqual({
      ok: false,
      reason: "the backend `gce` (picked by routing rule 1 (size `large`)) is not enabled on this controller (enabled: `local`)",
    });
    // No rules and no backend named: local, as before rules existed.
    expect(resolveJobOptions(config({}), {}, ["local"])).toMatchObject({ ok: true, config: { backend: "local" } });
  });
});

describe("BACKEND_CAPS", () => {
  it("reads jobs at once and dollars an hour per backend, either left out", () => {
    expect(parseBackendCaps("gce=5:2.50, ssh=3,local=:1.00")).toEqual({
      ok: true,
      caps: { gce: { jobs: 5, usdPerHour: 2.5 }, ssh: { jobs: 3 }, local: { usdPerHour: 1 } },
    });
  });

  it("reports every bad entry", () => {
    expect(parseBackendCaps("cloud=3,gce=0,ssh=x:1,k8s=2:lots,local=,gce=1")).toEqual({
      ok: false,
      errors: [
        '"cloud=3": unknown backend "cloud"; expected one of local, ssh, gce, k8s, cloudrun',
        '"gce=0": jobs at once "0" is not a whole number of at least 1',
        '"ssh=x:1": jobs at once "x" is not a whole number of at least 1',
        '"k8s=2:lots": "lots" is not an amount of US dollars such as 2.50',
        '"local=": expected <jobs at once>[:<US dollars an hour>], such as gce=5:2.50, ssh=3 or local=:1.00',
        '"gce=1": gce is capped twice',
      ],
    });
  });
});

describe("routing in the controller's configuration", () => {
  it("loads ROUTING_RULES, ROUTING_FILE and BACKEND_CAPS and shows them in the start-up line", () => {
    const loaded = loadControllerConfig({ ROUTING_RULES: "[{label: gpu, backend: local}, {backend: local}]", BACKEND_CAPS: "local=2:1.50" });
    expect(loaded.ok && loaded.config.routingRules).toEqual([{ label: "gpu", backend: "local" }, { backend: "local" }]);
    expect(loaded.ok && loaded.config.backendCaps).toEqual({ local: { jobs: 2, usdPerHour: 1.5 } });
    expect(loaded.ok && describeControllerConfig(loaded.config)).toMatchObject({
      routingRules: "1. label gpu → local; 2. every job → local",
      backendCaps: "local: 2 jobs at once, $1.50/hour",
    });
    const file = join(tempDir, "routing.yml");
    writeFileSync(file, "rules:\n  - { repo: acme/*, backend: local }\n");
    const fromFile = loadControllerConfig({ ROUTING_FILE: file });
    expect(fromFile.ok && fromFile.config.routingRules).toEqual([{ repo: "acme/*", backend: "local" }]);
  });

  it("refuses to start on a bad rule, a backend that is not turned on, a bad cap, or both rule sources", () => {
    const loaded = loadControllerConfig({
      ROUTING_RULES: "[{label: gpu, backend: gce}, {backend: cloud}]",
      BACKEND_CAPS: "k8s=2,ssh=0",
    });
    expect(!loaded.ok && loaded.errors).toEqual([
      'ROUTING_RULES="[{label: gpu, backend: gce}, {backend: cloud}]": rule 2: unknown backend "cloud"; expected one of local, ssh, gce, k8s, cloudrun',
      'BACKEND_CAPS="k8s=2,ssh=0": "ssh=0": jobs at once "0" is not a whole number of at least 1',
    ]);
    const off = loadControllerConfig({ ROUTING_RULES: "[{label: gpu, backend: gce}]", BACKEND_CAPS: "k8s=2" });
    expect(!off.ok && off.errors).toEqual([
      'ROUTING_RULES="[{label: gpu, backend: gce}]": rule 1: sends jobs to gce, which this configuration does not turn on (enabled: local)',
      'BACKEND_CAPS="k8s=2": caps k8s, which this configuration does not turn on (enabled: local)',
    ]);
    const both = loadControllerConfig({ ROUTING_RULES: "[{backend: local}]", ROUTING_FILE: join(tempDir, "missing.yml") });
    expect(!both.ok && both.errors[0]).toMatch(/^ROUTING_FILE=".*missing.yml": set either ROUTING_RULES or ROUTING_FILE, not both$/);
  });

  it("with LOCAL_BACKEND=false, a catch-all rule is the default backend, and ssh labels must exist on some host", () => {
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    const hosts = join(tempDir, "hosts.yml");
    writeFileSync(
      hosts,
      `hosts:\n  - { name: a, address: 10.0.0.5, user: w, privateKey: ${JSON.stringify(key)}, slots: 2, labels: [gpu, big] }\n  - { name: b, address: 10.0.0.6, user: w, privateKey: ${JSON.stringify(key)}, slots: 2 }\n`,
    );
    const ok = loadControllerConfig({
      LOCAL_BACKEND: "false",
      SSH_HOSTS_FILE: hosts,
      ROUTING_RULES: "[{label: gpu, backend: ssh, ssh_labels: [gpu, big]}, {backend: ssh}]",
    });
    expect(ok.ok && ok.config.routingRules).toEqual([{ label: "gpu", backend: "ssh", sshLabels: ["gpu", "big"] }, { backend: "ssh" }]);
    const bad = loadControllerConfig({
      LOCAL_BACKEND: "false",
      SSH_HOSTS_FILE: hosts,
      ROUTING_RULES: "[{backend: ssh, ssh_labels: [gpu, arm]}, {backend: local}]",
    });
    expect(!bad.ok && bad.errors.map((e) => e.replace(/^ROUTING_RULES="[^"]*": /, ""))).toEqual([
      "rule 1: no host in SSH_HOSTS_FILE carries every one of the labels gpu, arm",
      "rule 2: sends jobs to local, which this configuration does not turn on (enabled: ssh)",
    ]);
  });
});
