/**
 * The presets with the real agent CLIs, pinned in agent-clis/package.json, through the real worker
 * in the real sandbox (bubblewrap; as nobody when the worker is root), against a scripted model API
 * on 127.0.0.1 that answers with one shell call editing a file and then a final message.
 */
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { FIXTURES, startHarness, type Harness } from "../support/harness.js";
import { startScriptedModelApi, type ScriptedModelApi, type ScriptOptions } from "../support/scripted-model-api.js";
import { agentCliBin, agentClisDir } from "../support/agent-clis.js";
import { OWNER, REPO } from "../support/payloads.js";

let h: Harness | undefined;
let api: ScriptedModelApi | undefined;
afterEach(async () => {
  await h?.close();
  await api?.close();
  h = undefined;
  api = undefined;
});

/** Slow CLIs on a loaded machine: a generous limit, and no assertion on how long anything took. */
const CLI_TEST_TIMEOUT = 600_000;

const ROOT = process.getuid?.() === 0;

/**
 * The model's shell call: it edits a file and records where it ran — its uid, the first process of
 * its PID namespace (bubblewrap's) and what it sees of the controller's data folder.
 */
function editCommand(dataDir: string): string {
  return [
    "printf 'edited by the model\\n' >> MODEL_WAS_HERE.md",
    'echo "uid=$(id -u)" >> MODEL_WAS_HERE.md',
    'echo "pid1=$(cat /proc/1/comm)" >> MODEL_WAS_HERE.md',
    // bubblewrap makes the folders on the way to the work tree; nothing else of the data folder shows.
    `echo "data=$(ls -A '${dataDir}' | tr '\\n' ' ')" >> MODEL_WAS_HERE.md`,
  ].join("; ");
}

interface CliCase {
  preset: "claude-code" | "codex" | "opencode";
  pkg: string;
  bin: string;
  /** `.github/agent-work.yml` of the repository. */
  repoConfig: string;
  /** The controller's environment for this CLI: its key, its base URL, its settings. */
  env: (apiUrl: string, key: string) => Record<string, string>;
  /** What the final comment says about the model's use. */
  usageText: RegExp;
}

const CASES: CliCase[] = [
  {
    preset: "claude-code",
    pkg: "@anthropic-ai/claude-code",
    bin: "claude",
    repoConfig: "agent: claude-code\n",
    env: (url, key) => ({
      ANTHROPIC_API_KEY: key,
      ANTHROPIC_BASE_URL: url,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      AGENT_ENV_PASSTHROUGH: "PATH,ANTHROPIC_API_KEY,ANTHROPIC_BASE_URL,CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    }),
    // Claude Code prices its own run: two calls of 1,000 tokens in and 100 out.
    usageText: /model \$0\.\d+ \([a-z0-9.-]+: 2,000 tokens in, 200 out; reported by claude-code\)/,
  },
  {
    preset: "codex",
    pkg: "@openai/codex",
    bin: "codex",
    repoConfig: "agent: codex\nmodel: gpt-5-codex\n",
    env: (url, key) => ({
      OPENAI_API_KEY: key,
      AGENT_ENV_PASSTHROUGH: "PATH,OPENAI_API_KEY",
      // Codex takes its provider from config only: the operator's flags for the preset.
      AGENT_EXTRA_ARGS: JSON.stringify({
        codex: [
          "-c",
          `model_providers.scripted={name="scripted",base_url="${url}/v1",env_key="OPENAI_API_KEY",wire_api="responses"}`,
          "-c",
          "model_provider=scripted",
        ],
      }),
    }),
    // Codex reports tokens only: 2,000 in and 200 out at gpt-5-codex's list price ($1.25 / $10 per M).
    usageText: /model \$0\.0045 \(gpt-5-codex: 2,000 tokens in, 200 out; gpt-5-codex list price \(checked \d{4}-\d{2}-\d{2}\)\)/,
  },
  {
    preset: "opencode",
    pkg: "opencode-ai",
    bin: "opencode",
    repoConfig: "agent: opencode\nmodel: anthropic/claude-sonnet-4-5\n",
    env: (url, key) => ({
      ANTHROPIC_API_KEY: key,
      OPENCODE_CONFIG_CONTENT: JSON.stringify({ provider: { anthropic: { options: { baseURL: `${url}/v1` } } }, autoupdate: false, share: "disabled" }),
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      AGENT_ENV_PASSTHROUGH: "PATH,ANTHROPIC_API_KEY,OPENCODE_CONFIG_CONTENT,OPENCODE_DISABLE_MODELS_FETCH",
    }),
    // opencode prices its steps itself (claude-sonnet-4-5: $3 / $15 per M).
    usageText: /model \$0\.0090 \(anthropic\/claude-sonnet-4-5: 2,000 tokens in, 200 out; reported by opencode\)/,
  },
];

async function startJob(
  c: CliCase,
  script: ScriptOptions,
  extra: { env?: Record<string, string>; discussion?: { id: number; author: string; body: string }[]; repoConfig?: string } = {},
) {
  const bin = agentCliBin(c.pkg, c.bin);
  api = await startScriptedModelApi(script);
  const key = `sk-canary-${randomBytes(24).toString("hex")}`;
  h = await startHarness({
    repoConfigYaml: extra.repoConfig ?? c.repoConfig,
    ...(extra.discussion ? { discussion: extra.discussion } : {}),
    env: {
      // The CLI's folder is readable in the sandbox, and its executables are on the agent's PATH.
      SANDBOX_RO_BINDS: `${FIXTURES.replace(/\/$/, "")},${agentClisDir()}`,
      PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
      STATUS_UPDATE_INTERVAL_SECONDS: "600",
      ...c.env(api.url, key),
      ...extra.env,
    },
    // Real CLIs start slowly on a loaded machine: a job "minute" here is a real one.
    secondsPerMinute: 60,
  });
  return { key };
}

/** Every text the app wrote to GitHub, except the one header that must carry the token (revoke). */
function everythingWrittenToGitHub(harness: Harness): string {
  return harness.github.calls
    .filter((c) => !(c.method === "DELETE" && c.route === "/installation/token"))
    .map((c) => JSON.stringify(c.body) + c.authorization)
    .join("\n");
}

describe.each(CASES)("the $preset preset with the real CLI", (c) => {
  it(
    "edits the repository in the sandbox, opens a pull request, and puts the model's tokens and dollars on the bill",
    async () => {
      const { key } = await startJob(
        c,
        {
          script: (turn) => (turn === 0 ? { shell: editCommand(h?.dataDir ?? "/nonexistent") } : { text: "Done: MODEL_WAS_HERE.md is edited." }),
          usage: { inputTokens: 1000, outputTokens: 100 },
        },
        {
          // A 1 MB discussion: the prompt reaches the agent on stdin, never as an argument.
          discussion: [{ id: 1, author: "Codertocat", body: `The whole log follows. ${"x".repeat(1024 * 1024)}` }],
        },
      );
      // The edit command names the data folder, which exists only now.
      const delivery = await h!.deliverComment("/agent run please note where you ran", {
        commentId: 10,
        earlierComments: 1,
        title: "Spelling error in the README file",
      });
      expect(delivery.status).toBe(200);
      await h!.settle();
      const [job] = await h!.controller.store.list();
      const logs = (await h!.controller.logs.read(job!.id)).map((l) => l.line);
      expect(job!.state, logs.slice(-30).join("\n")).toBe("succeeded");

      // The pull request holds the model's edit, made inside the sandbox.
      expect(h!.github.callsTo("POST", "/pulls")).toHaveLength(1);
      const edited = (await h!.git.readFile(OWNER, REPO, job!.branch!, "MODEL_WAS_HERE.md"))!;
      expect(edited).toContain("edited by the model");
      expect(edited).toContain(`uid=${ROOT ? 65534 : process.getuid!()}`);
      expect(edited).toContain("pid1=bwrap");
      // The store, the logs and other jobs stay out of sight: only the way to its own work tree.
      expect(readdirSync(h!.dataDir).length).toBeGreaterThan(1);
      expect(edited).toContain("data=workers \n");

      // The model got the key, and the prompt whole, the discussion cut to the prompt's limit.
      const turns = api!.requests.filter((r) => r.turn);
      expect(turns.length).toBeGreaterThanOrEqual(2);
      const sent = JSON.stringify(turns[0]!.headers);
      expect(sent).toContain(key);
      // (Booleans: a failure should not print a megabyte.)
      expect(turns[0]!.body.includes("Spelling error in the README file")).toBe(true);
      expect(turns[0]!.body.includes("The whole log follows. xxxx")).toBe(true);
      expect(turns[0]!.body.includes("more characters cut by agent-work")).toBe(true);

      // Tokens and dollars: in the final comment as compute + model = total, and in the ledger.
      const entry = (await h!.controller.ledger.get(job!.id))!;
      expect(entry.agentUsage).toMatchObject({ source: c.preset, inputTokens: 2000, outputTokens: 200 });
      expect(entry.agentUsage!.costUsd).toBeGreaterThan(0);
      expect(entry.totalUsd).toBeCloseTo(entry.agentUsage!.costUsd!, 10);
      expect(job!.costUsd).toBeCloseTo(entry.totalUsd!, 10);
      const comment = h!.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
      expect(comment).toMatch(c.usageText);
      expect(comment).toMatch(/\*\*Cost:\*\* compute \$0 \(local\) — [\dmins ]+ of compute \+ model \$[\d.]+ .* = \$[\d.]+ · /);

      // `/agent cost` itemises it too.
      await h!.deliverComment("/agent cost", { commentId: 11 });
      await h!.settle();
      const costReply = h!.github.callsTo("POST", "/issues/:id/comments").at(-1)!.body.body as string;
      expect(costReply).toMatch(/cost \$[\d.]+: compute \$0\.00 for .* of compute \+ model \$[\d.]+ \(/);
      expect(costReply).toMatch(/\| local \| - \| [\dmins ]+ \| \$[\d.]+ \(2,200 tokens\) \| \$[\d.]+ \|/);

      // No model key and no GitHub token anywhere people or logs can read.
      const everything = [everythingWrittenToGitHub(h!), h!.logLines.join("\n"), JSON.stringify(logs)].join("\n");
      expect(everything).not.toContain(key);
      expect(everything).not.toContain(h!.workerToken);
    },
    CLI_TEST_TIMEOUT,
  );
});

describe("the per-job budget with a real agent", () => {
  it(
    "stops a model that keeps calling tools once its spend passes the job budget, and says so with the figures",
    async () => {
      const claude = CASES[0]!;
      // Each call: 100,000 tokens in and 1,000 out, about $0.40 or more at any Claude list price.
      await startJob(
        claude,
        { script: (turn) => ({ shell: `echo turn ${turn} >> LOOP.md` }), usage: { inputTokens: 100_000, outputTokens: 1_000 } },
        { env: { BUDGET_JOB_USD: "1.00" } },
      );
      await h!.deliverLabel({ body: "Keep going." });
      await h!.settle();
      const [job] = await h!.controller.store.list();
      expect(job!.state).toBe("failed");
      expect(job!.message).toMatch(/^stopped at the per-job budget: model \$(\d+\.\d\d) \+ compute \$0\.00 = \$\d+\.\d\d, over the \$1\.00 one job may cost$/);
      const modelUsd = Number(/model \$(\d+\.\d\d)/.exec(job!.message!)![1]);
      expect(modelUsd).toBeGreaterThan(1);
      // It stopped soon after the budget: not the endless loop the model asked for.
      expect(api!.turns()).toBeLessThan(10);
      const comment = h!.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
      expect(comment).toContain("stopped at the per-job budget");
      expect(comment).toMatch(/\*\*Cost:\*\* compute .* \+ model \$\d+\.\d\d .* = \$\d+\.\d\d/);
      const entry = (await h!.controller.ledger.get(job!.id))!;
      expect(entry.totalUsd).toBeGreaterThan(1);
      expect(h!.github.callsTo("POST", "/pulls")).toHaveLength(0);
    },
    CLI_TEST_TIMEOUT,
  );
});
