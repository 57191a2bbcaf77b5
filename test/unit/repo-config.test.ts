import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { formatRepoConfigErrors, parseRepoConfig, type RepoConfigError, type RepoConfigResult } from "../../src/config/repo-config.js";

const limits = { defaultAgent: "claude-code" as const, defaultMaxMinutes: 30, maxMinutesCeiling: 55 };

function fromYaml(text: string): RepoConfigResult {
  return parseRepoConfig(parse(text) as unknown, limits);
}

function errorsOf(result: RepoConfigResult): RepoConfigError[] {
  if (result.ok) throw new Error(`expected errors, got ${JSON.stringify(result.config)}`);
  return result.errors;
}

function errorFor(result: RepoConfigResult, key: string): string {
  const error = errorsOf(result).find((e) => e.key === key);
  if (!error) throw new Error(`no error for ${key}: ${JSON.stringify(errorsOf(result))}`);
  return error.message;
}

describe("parseRepoConfig", () => {
  it("uses the installation's defaults when the repository has no file (no network: the controller's NETWORK_DEFAULT decides)", () => {
    for (const raw of [null, undefined, {}]) {
      expect(parseRepoConfig(raw, limits)).toEqual({
        ok: true,
        config: { agent: "claude-code", maxMinutes: 30, branchPrefix: "agent/", draft: true, priority: 0, sizes: {}, budget: {}, forkPullRequests: "refuse" },
      });
    }
  });

  it("reads every key from YAML into camelCase", () => {
    const result = fromYaml(`
agent: aider
model: sonnet
instructions: |
  Run the tests with npm test.
max_minutes: 45
branch_prefix: bots/agent-
draft: false
backend: local
priority: -3
`);
    expect(result).toEqual({
      ok: true,
      config: {
        agent: "aider",
        model: "sonnet",
        instructions: "Run the tests with npm test.\n",
        maxMinutes: 45,
        branchPrefix: "bots/agent-",
        draft: false,
        backend: "local",
        priority: -3,
        sizes: {},
        budget: {},
        forkPullRequests: "refuse",
      },
    });
  });

  it("accepts a custom command that takes the prompt file", () => {
    const result = fromYaml(`
agent: command
command: ["./scripts/agent.sh", "--task={prompt_file}"]
`);
    expect(result.ok && result.config.command).toEqual(["./scripts/agent.sh", "--task={prompt_file}"]);
  });

  it("requires a command for agent: command, and one that takes the prompt", () => {
    expect(errorFor(fromYaml("agent: command"), "command")).toMatch(/required when `agent: command`/);
    expect(errorFor(fromYaml('agent: command\ncommand: ["my-agent", "--go"]'), "command")).toMatch(/\{prompt_file\}.*\{prompt\}/);
    expect(errorFor(fromYaml('agent: command\ncommand: "my-agent {prompt}"'), "command")).toMatch(/list of strings/);
    expect(errorFor(fromYaml("agent: command\ncommand: []"), "command")).toMatch(/non-empty list/);
  });

  it("refuses a command with a preset agent", () => {
    expect(errorFor(fromYaml('agent: aider\ncommand: ["x", "{prompt}"]'), "command")).toMatch(/only used with `agent: command`/);
  });

  it("names the agent presets when the agent is unknown", () => {
    expect(errorFor(fromYaml("agent: claude"), "agent")).toBe(
      "`claude` is not an agent preset; use one of `opencode`, `claude-code`, `aider`, `codex`, `command`",
    );
  });

  it("names the ceiling when max_minutes is above it", () => {
    expect(errorFor(fromYaml("max_minutes: 90"), "max_minutes")).toBe("90 is above this installation's ceiling of 55 minutes; use 1 to 55");
    expect(errorFor(fromYaml("max_minutes: 0"), "max_minutes")).toMatch(/use 1 to 55/);
    expect(errorFor(fromYaml("max_minutes: 2.5"), "max_minutes")).toMatch(/whole number/);
    expect(errorFor(fromYaml('max_minutes: "30"'), "max_minutes")).toMatch(/whole number/);
  });

  it("keeps the default max minutes under a lower ceiling", () => {
    const result = parseRepoConfig(null, { ...limits, maxMinutesCeiling: 20 });
    expect(result.ok && result.config.maxMinutes).toBe(20);
  });

  it("limits instructions to 4000 characters", () => {
    expect(parseRepoConfig({ instructions: "x".repeat(4000) }, limits).ok).toBe(true);
    expect(errorFor(parseRepoConfig({ instructions: "x".repeat(4001) }, limits), "instructions")).toMatch(/at most 4000/);
    expect(errorFor(parseRepoConfig({ instructions: ["a"] }, limits), "instructions")).toMatch(/must be text/);
  });

  it("only accepts safe branch prefixes", () => {
    for (const good of ["agent/", "bots/agent-", "ai.work/", "x"]) {
      expect(parseRepoConfig({ branch_prefix: good }, limits).ok, good).toBe(true);
    }
    const bad: Record<string, RegExp> = {
      "-rf/": /must not start with `-` or `\/`/,
      "/abs/": /must not start with/,
      "a/../b/": /`\.\.`/,
      "a b/": /letters, digits/,
      "a;rm/": /letters, digits/,
      "a//b": /`\/\/`/,
      "a/.hidden/": /starting with `\.`/,
      "refs.lock/": /`\.lock`/,
      "": /not a branch prefix/,
    };
    for (const [prefix, message] of Object.entries(bad)) {
      expect(errorFor(parseRepoConfig({ branch_prefix: prefix }, limits), "branch_prefix"), prefix).toMatch(message);
    }
  });

  it("accepts every backend name and says which exist for an unknown one (intake checks which are enabled)", () => {
    expect(fromYaml("backend: gce").ok).toBe(true);
    expect(errorFor(fromYaml("backend: cloud"), "backend")).toBe("`cloud` is not a backend; available: `local`, `ssh`, `gce`, `k8s`, `cloudrun`");
  });

  it("leaves the backend unset when the file names none, for the controller's routing rules to pick", () => {
    expect(fromYaml("agent: aider")).toMatchObject({ ok: true, config: { agent: "aider" } });
    expect((fromYaml("agent: aider") as { config: object }).config).not.toHaveProperty("backend");
  });

  it("reads the ssh host labels its jobs need", () => {
    expect(fromYaml("ssh_labels: [gpu, big, gpu]")).toMatchObject({ ok: true, config: { sshLabels: ["gpu", "big"] } });
    expect(errorFor(fromYaml("ssh_labels: gpu"), "ssh_labels")).toBe("must be a list of ssh host labels such as `[gpu]`, not `gpu`");
    expect(errorFor(fromYaml("ssh_labels: ['has space']"), "ssh_labels")).toBe(
      "must list 1 to 20 ssh host labels such as `[gpu]` (no spaces or commas in a label)",
    );
  });

  it("reads what to do with forks' pull requests: refuse (default) or a no-secrets patch run", () => {
    expect(fromYaml("fork_pull_requests: patch")).toMatchObject({ ok: true, config: { forkPullRequests: "patch" } });
    expect(errorFor(fromYaml("fork_pull_requests: push"), "fork_pull_requests")).toMatch(/`refuse` \(the default\) or `patch`/);
  });

  it("reads a repository budget and names a bad key", () => {
    expect(fromYaml("budget: { job_usd: 0.5, monthly_usd: 10 }")).toMatchObject({ ok: true, config: { budget: { jobUsd: 0.5, monthlyUsd: 10 } } });
    expect(errorFor(fromYaml("budget: { hourly_usd: 1 }"), "budget")).toMatch(/unknown setting `hourly_usd`/);
    expect(errorFor(fromYaml("budget: { job_usd: lots }"), "budget")).toMatch(/amount of US dollars/);
  });

  it("reads an allow-list of host patterns, and refuses one that names this machine or a metadata server", () => {
    expect(fromYaml('network: allowlist\nallow: ["registry.npmjs.org", "*.pypi.org", "registry.example.com:8443", "10.20.0.5:443"]')).toMatchObject({
      ok: true,
      config: { network: "allowlist", allow: ["registry.npmjs.org", "*.pypi.org", "registry.example.com:8443", "10.20.0.5:443"] },
    });
    for (const inside of ["127.0.0.1:3000", "localhost", "api.localhost:8080", "*.localhost", "169.254.169.254", "0.0.0.0:80"]) {
      expect(errorFor(fromYaml(`network: allowlist\nallow: ["registry.npmjs.org", "${inside}"]`), "allow"), inside).toMatch(
        /^`allow` may not name this machine or a link-local address .*; the controller's NETWORK_ALLOW_DEFAULT can$/,
      );
    }
    expect(errorFor(fromYaml('allow: ["https://evil.example/"]'), "allow")).toMatch(/^`allow` takes a list of host names or patterns/);
    expect(errorFor(fromYaml("allow: registry.npmjs.org"), "allow")).toMatch(/^`allow` takes a list of host names or patterns/);
  });

  it("reads the agent's network and sandbox limits, which may only be lower than the controller's ceilings", () => {
    const ceilings = { memoryMb: 4096, maxProcesses: 512, maxDiskMb: 10240 };
    const withCeilings = (text: string) => parseRepoConfig(parse(text) as unknown, { ...limits, sandboxCeilings: ceilings });
    expect(withCeilings("network: none\nmemory_mb: 1024\nmax_processes: 64\nmax_disk_mb: 500")).toMatchObject({
      ok: true,
      config: { network: "none", memoryMb: 1024, maxProcesses: 64, maxDiskMb: 500 },
    });
    const unset = withCeilings("network: full");
    expect(unset.ok && [unset.config.memoryMb, unset.config.maxProcesses, unset.config.maxDiskMb]).toEqual([undefined, undefined, undefined]);

    expect(errorFor(withCeilings("network: off"), "network")).toMatch(/^`off` is not a network setting; use `full` .* or `none`/);
    expect(errorFor(withCeilings("memory_mb: 8192"), "memory_mb")).toBe(
      "8192 is above this installation's ceiling of 4096 MB of memory; use 64 to 4096, or leave it out for the ceiling",
    );
    expect(errorFor(withCeilings("max_processes: 10000"), "max_processes")).toMatch(/ceiling of 512 processes; use 16 to 512/);
    expect(errorFor(withCeilings("max_disk_mb: 20000"), "max_disk_mb")).toMatch(/ceiling of 10240 MB of disk/);
    expect(errorFor(withCeilings("memory_mb: 10"), "memory_mb")).toBe("`10` is not a whole number of MB of memory from 64 to 4096");
    expect(errorFor(withCeilings('max_processes: "64"'), "max_processes")).toMatch(/not a whole number of processes/);
    expect(errorFor(withCeilings("max_disk_mb: 1.5"), "max_disk_mb")).toMatch(/not a whole number of MB of disk/);
    // Without the controller's ceilings (a caller that has none) only the floors and hard maxima apply.
    expect(fromYaml("memory_mb: 8192").ok).toBe(true);
    expect(errorFor(fromYaml("memory_mb: 99999999"), "memory_mb")).toMatch(/ceiling of 1048576 MB/);
    expect(errorFor(fromYaml("memoryMb: 512"), "memoryMb")).toBe("unknown setting; did you mean `memory_mb`?");
  });

  it("reads sizes for size labels and --machine, and names a bad one", () => {
    const ok = fromYaml("sizes:\n  large: { machine: e2-standard-4, max_minutes: 45 }\n  small: { machine: e2-small }");
    expect(ok).toMatchObject({ ok: true, config: { sizes: { large: { machine: "e2-standard-4", maxMinutes: 45 }, small: { machine: "e2-small" } } } });
    expect(errorFor(fromYaml("sizes:\n  large: { cpus: 4 }"), "sizes")).toMatch(/unknown setting `cpus`/);
    expect(errorFor(fromYaml("sizes:\n  large: { max_minutes: 500 }"), "sizes")).toMatch(/1 to 55/);
  });

  it("checks draft, priority and model", () => {
    expect(errorFor(fromYaml("draft: maybe"), "draft")).toMatch(/`true` or `false`/);
    expect(errorFor(fromYaml("priority: 11"), "priority")).toMatch(/-10 to 10/);
    expect(errorFor(fromYaml("priority: -11"), "priority")).toMatch(/-10 to 10/);
    expect(errorFor(fromYaml("model: --dangerous"), "model")).toMatch(/not a model name/);
    expect(fromYaml("model: anthropic/claude-sonnet-4-5").ok).toBe(true);
  });

  it("reads setup commands and their time limit, and says what is wrong with a bad list", () => {
    expect(fromYaml("setup: [npm ci, 'pip install -r requirements.txt']\nsetup_minutes: 5")).toMatchObject({
      ok: true,
      config: { setup: ["npm ci", "pip install -r requirements.txt"], setupMinutes: 5 },
    });
    expect(fromYaml("setup:\n  - |\n    npm ci\n    npm run build")).toMatchObject({
      ok: true,
      config: { setup: ["npm ci\nnpm run build\n"], setupMinutes: 10 },
    });
    expect(errorFor(fromYaml("setup: npm ci"), "setup")).toContain("must be a list of shell commands, one per step, not a single text");
    expect(errorFor(fromYaml("setup: []"), "setup")).toContain("must be a non-empty list of shell commands");
    expect(errorFor(fromYaml("setup: [npm ci, 3]"), "setup")).toBe("step 2 is `3`, not a shell command; each step is one non-empty text");
    expect(errorFor(fromYaml("setup: [npm ci, '  ']"), "setup")).toContain("step 2 is");
    expect(errorFor(fromYaml(`setup: [${Array.from({ length: 21 }, () => "true").join(", ")}]`), "setup")).toContain(
      "lists 21 commands; at most 20 are allowed",
    );
    expect(errorFor(fromYaml(`setup: [${"x".repeat(4001)}]`), "setup")).toContain("step 1 is 4001 characters long; at most 4000 are allowed");
    expect(errorFor(fromYaml("setup: [npm ci]\nsetup_minutes: 56"), "setup_minutes")).toContain("from 1 to 55");
    expect(errorFor(fromYaml("setup: [npm ci]\nsetup_minutes: 1.5"), "setup_minutes")).toContain("not a whole number of minutes");
  });

  it("names an unknown key with a suggestion for a near miss", () => {
    expect(errorFor(fromYaml("max_minute: 20"), "max_minute")).toBe("unknown setting; did you mean `max_minutes`?");
    expect(errorFor(fromYaml("maxMinutes: 20"), "maxMinutes")).toBe("unknown setting; did you mean `max_minutes`?");
    expect(errorFor(fromYaml("branch-prefix: x/"), "branch-prefix")).toBe("unknown setting; did you mean `branch_prefix`?");
    expect(errorFor(fromYaml("agnet: aider"), "agnet")).toBe("unknown setting; did you mean `agent`?");
    expect(errorFor(fromYaml("budgets: 10"), "budgets")).toBe("unknown setting; did you mean `budget`?");
  });

  it("ignores the _extends key Probot's loader understands", () => {
    expect(parseRepoConfig({ _extends: ".github", draft: false }, limits).ok).toBe(true);
  });

  it("reports every bad key together", () => {
    const errors = errorsOf(fromYaml("agent: nope\nmax_minutes: 100\ndraft: 1\nbackend: k9s\nmax_minute: 2"));
    expect(errors.map((e) => e.key).sort()).toEqual(["agent", "backend", "draft", "max_minute", "max_minutes"]);
  });

  it("refuses a file that is not a mapping", () => {
    expect(errorFor(parseRepoConfig(["agent"], limits), "(file)")).toMatch(/mapping/);
    expect(errorFor(parseRepoConfig("agent: aider", limits), "(file)")).toMatch(/mapping/);
  });
});

describe("formatRepoConfigErrors", () => {
  it("shows the file's path and one bullet per key", () => {
    const text = formatRepoConfigErrors(errorsOf(fromYaml("max_minute: 2\nbackend: gcp")));
    expect(text).toBe(
      [
        "**`.github/agent-work.yml` has 2 problems; fix them on the default branch and try again:**",
        "",
        "- `max_minute`: unknown setting; did you mean `max_minutes`?",
        "- `backend`: `gcp` is not a backend; available: `local`, `ssh`, `gce`, `k8s`, `cloudrun`",
      ].join("\n"),
    );
  });

  it("keeps values from the file inside code spans, so they cannot ping or break out", () => {
    const text = formatRepoConfigErrors(errorsOf(parseRepoConfig({ "@admin`x\n# head": 1, agent: "@octocat `rm`" }, limits)));
    expect(text).toContain("- `@admin x # head`: unknown setting");
    expect(text).toContain("- `agent`: `@octocat  rm ` is not an agent preset");
    expect(text.split("\n").filter((line) => line.startsWith("- "))).toHaveLength(2);
  });

  it("shortens long values", () => {
    const text = formatRepoConfigErrors(errorsOf(parseRepoConfig({ backend: "x".repeat(200) }, limits)));
    expect(text).toContain(`\`${"x".repeat(37)}...\``);
    expect(text).not.toContain("x".repeat(41));
  });
});
