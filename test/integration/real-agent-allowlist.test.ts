/**
 * The real Claude Code CLI under `network: allowlist`, through the real controller, worker and
 * sandbox, against the scripted model API on 127.0.0.1: the CLI reaches its model only through the
 * worker's proxy (inside the sandbox's own network namespace, 127.0.0.1 is nobody's but its own),
 * the proxy adds the real key, and the agent — its environment, its files, every process it can see
 * in /proc — holds only the placeholder.
 */
import { randomBytes } from "node:crypto";
import { afterEach, expect, it } from "vitest";
import { MODEL_KEY_PLACEHOLDER } from "../../src/worker/agent-sandbox.js";
import { agentCliBin, agentClisDir } from "../support/agent-clis.js";
import { FIXTURES, startHarness, type Harness } from "../support/harness.js";
import { OWNER, REPO } from "../support/payloads.js";
import { startScriptedModelApi, type ScriptedModelApi } from "../support/scripted-model-api.js";

let h: Harness | undefined;
let api: ScriptedModelApi | undefined;
afterEach(async () => {
  await h?.close();
  await api?.close();
});

/**
 * The model's shell call: a prompt-injected agent hunting for the key. It writes down everything a
 * thief would look at — its environment, every environment and command line /proc shows, and every
 * file under $HOME, /tmp and the work tree — into LOOT.txt, which the worker pushes.
 */
const HUNT = [
  "{ echo '## env'; env",
  "echo '## /proc'; for p in /proc/[0-9]*; do echo \"# $p $(cat $p/comm 2>/dev/null)\"; tr '\\0' '\\n' < $p/environ 2>/dev/null; tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done",
  "echo '## files'; find \"$HOME\" /tmp . -path ./.git -prune -o -type f ! -name LOOT.txt -print -exec cat {} \\; 2>/dev/null; } > /tmp/loot 2>&1",
  "mv /tmp/loot LOOT.txt",
  "printf 'edited through the allow-list\\n' > MODEL_WAS_HERE.md",
].join("; ");

it("Claude Code edits the repository with no model key in its sandbox: the worker's proxy adds the real one on the way to the model", async () => {
  const bin = agentCliBin("@anthropic-ai/claude-code", "claude");
  api = await startScriptedModelApi({ script: (turn) => (turn === 0 ? { shell: HUNT } : { text: "Done." }) });
  const modelHost = new URL(api.url).host;
  const key = `sk-ant-real-${randomBytes(24).toString("hex")}`;
  h = await startHarness({
    repoConfigYaml: "agent: claude-code\nnetwork: allowlist\n",
    env: {
      SANDBOX_RO_BINDS: `${FIXTURES.replace(/\/$/, "")},${agentClisDir()}`,
      PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
      STATUS_UPDATE_INTERVAL_SECONDS: "600",
      ANTHROPIC_API_KEY: key,
      // The agent's base URL names the model host; inside its network namespace nothing listens
      // there, so only the proxy (HTTP_PROXY) can carry the request.
      ANTHROPIC_BASE_URL: api.url,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      AGENT_ENV_PASSTHROUGH: "PATH,ANTHROPIC_API_KEY,ANTHROPIC_BASE_URL,CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
      MODEL_PROXY: `${modelHost},x-api-key,ANTHROPIC_API_KEY,${api.url}`,
    },
    secondsPerMinute: 60,
  });
  expect((await h.deliverLabel({ body: "Note where you ran." })).status).toBe(200);
  await h.settle();
  const [job] = await h.controller.store.list();
  const log = (await h.controller.logs.read(job!.id)).map((l) => l.line);
  expect(job!.state, log.slice(-40).join("\n")).toBe("succeeded");
  expect(log.some((l) => l.startsWith("network: allow-list ("))).toBe(true);

  // The model did its work: two turns, both with the real key, which only the proxy held.
  const turns = api.requests.filter((r) => r.turn);
  expect(turns.length).toBeGreaterThanOrEqual(2);
  for (const r of api.requests) {
    expect(r.headers["x-api-key"]).toBe(key);
    expect(JSON.stringify(r.headers)).not.toContain(MODEL_KEY_PLACEHOLDER);
  }
  expect(await h.git.readFile(OWNER, REPO, job!.branch!, "MODEL_WAS_HERE.md")).toBe("edited through the allow-list\n");

  // What the hunting agent found: the placeholder and its proxy, never the key.
  const loot = (await h.git.readFile(OWNER, REPO, job!.branch!, "LOOT.txt")) ?? "";
  expect(loot).toContain(`ANTHROPIC_API_KEY=${MODEL_KEY_PLACEHOLDER}`);
  expect(loot).toContain("HTTPS_PROXY=http://127.0.0.1:3128");
  // It did look at /proc (Claude Code's own process among others) and at files.
  expect(loot).toMatch(/# \/proc\/\d+ claude/);
  expect(loot).toContain("## files");
  expect(loot).not.toContain(key);

  // Nor did the key reach anything people read.
  const final = h.github.callsTo("PATCH", "/issues/comments/:id").at(-1)!.body.body as string;
  expect(final).not.toContain(key);
  expect(JSON.stringify(h.github.calls)).not.toContain(key);
  expect(h.logLines.join("\n")).not.toContain(key);
  expect(JSON.stringify(log)).not.toContain(key);
}, 600_000);
