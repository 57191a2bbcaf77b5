/**
 * The controller as a real process, for the crash-matrix and SIGTERM tests (compiled first,
 * test/support/compiled-args.ts): the configuration from the environment as in production, the
 * local backend, a real git server (the test's), and GitHub faked by test/support/fake-github.ts
 * in this process (nock only works in-process). Every call the fake records is appended to
 * `calls.jsonl`, and what it has created (comments, pull requests, check runs) is written to
 * `state.json` before it answers, so a restarted process carries on with the same GitHub and the
 * test reads every call.
 *
 * Test-only settings, read here and nowhere else:
 *   AGENT_WORK_TEST_CRASH_AT      where this process SIGKILLs itself: a PipelineStep (src/pipeline/
 *                                 deps.ts), or one of CRASH_ON_CALL below (after GitHub made the
 *                                 object, before the controller hears the answer)
 *   AGENT_WORK_TEST_GITHUB_DIR    where calls.jsonl and state.json live
 *   AGENT_WORK_TEST_WORKER_TOKEN  the canary token the fake mints for the worker
 *   AGENT_WORK_TEST_BARE_REPO     the git server's bare repository (branch and PR head shas)
 *   AGENT_WORK_TEST_PERMISSION    what the permission API answers for everyone (default write)
 *   AGENT_WORK_TEST_BASE_SHA, AGENT_WORK_TEST_REPO_CONFIG, AGENT_WORK_TEST_SECONDS_PER_MINUTE
 */
import { execFileSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import nock from "nock";
import { loadControllerConfig } from "../../src/config/env.js";
import { startController } from "../../src/controller.js";
import { stopOnSignals } from "../../src/stop-on-signals.js";
import type { PipelineStep } from "../../src/pipeline/deps.js";
import { fakeGitHub, type FakeGitHubState, type RecordedCall } from "./fake-github.js";
import { INSTALLATION_ID, OWNER, REPO } from "./payloads.js";

/** GitHub calls this process can die in: the object exists on GitHub, its id is not recorded. */
export const CRASH_ON_CALL = {
  /** GitHub added the 👀 of the job just admitted; the outbox row is not yet marked delivered. */
  "eyes-added": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/reactions"),
  /** GitHub posted a refusal; the outbox row is not yet marked delivered. */
  "refusal-posted": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/issues/:id/comments") && /did not start/.test(c.body?.body ?? ""),
  /** GitHub posted a command's reply (help); the outbox row is not yet marked delivered. */
  "reply-posted": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/issues/:id/comments") && /agent-work commands/.test(c.body?.body ?? ""),
  "check-run-created": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/check-runs") && c.body?.status === "queued",
  "comment-created": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/issues/:id/comments") && /agent-work:job=/.test(c.body?.body ?? ""),
  /** GitHub minted the worker's token; the controller never hears the answer (the token is seen by no one). */
  "token-mint-answered": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/access_tokens") && Boolean(c.body?.repository_ids),
  "pr-opened": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/pulls"),
  "pr-check-created": (c: RecordedCall) => c.method === "POST" && c.route.endsWith("/check-runs") && c.body?.status === "completed",
  "final-status-written": (c: RecordedCall) => c.method === "PATCH" && c.route.endsWith("/issues/comments/:id") && /agent-work: done/.test(c.body?.body ?? ""),
} as const;

export type CrashPoint = PipelineStep | keyof typeof CRASH_ON_CALL;

const env = process.env;
const crashAt = env.AGENT_WORK_TEST_CRASH_AT as CrashPoint | undefined;
const dir = env.AGENT_WORK_TEST_GITHUB_DIR!;
const bareRepo = env.AGENT_WORK_TEST_BARE_REPO!;
const statePath = path.join(dir, "state.json");

const die = (where: string) => {
  // One line on stderr so a failing test shows where this process went.
  process.stderr.write(`crash-controller: SIGKILL at ${where}\n`);
  process.kill(process.pid, "SIGKILL");
};

const branchSha = (branch: string): string | null => {
  try {
    return execFileSync("git", ["--git-dir", bareRepo, "rev-parse", "--verify", "--quiet", `refs/heads/${branch}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
};

nock.disableNetConnect();
nock.enableNetConnect(/127\.0\.0\.1|localhost/);
const github = fakeGitHub({
  owner: OWNER,
  repo: REPO,
  installationId: INSTALLATION_ID,
  workerToken: env.AGENT_WORK_TEST_WORKER_TOKEN!,
  ...(env.AGENT_WORK_TEST_PERMISSION ? { permission: env.AGENT_WORK_TEST_PERMISSION } : {}),
  repoConfigYaml: env.AGENT_WORK_TEST_REPO_CONFIG!,
  baseSha: env.AGENT_WORK_TEST_BASE_SHA!,
  ...(existsSync(statePath) ? { initialState: JSON.parse(readFileSync(statePath, "utf8")) as FakeGitHubState } : {}),
  onCall(call) {
    appendFileSync(path.join(dir, "calls.jsonl"), JSON.stringify({ ...call, pid: process.pid }) + "\n");
    writeFileSync(`${statePath}.tmp`, JSON.stringify(github.state()));
    renameSync(`${statePath}.tmp`, statePath);
    if (crashAt && crashAt in CRASH_ON_CALL && CRASH_ON_CALL[crashAt as keyof typeof CRASH_ON_CALL](call)) die(crashAt);
  },
});
github.setBranchSha(branchSha);
github.setPullHeadSha((branch) => branchSha(branch) ?? "f".repeat(40));

const loaded = loadControllerConfig(env);
if (!loaded.ok) {
  console.error(loaded.errors.join("\n"));
  process.exit(2);
}
const controller = await startController({
  config: loaded.config,
  secondsPerMinute: Number(env.AGENT_WORK_TEST_SECONDS_PER_MINUTE ?? "1"),
  octokitDefaults: { retry: { enabled: false } },
  onStep: (step) => {
    if (step === crashAt) die(step);
  },
});
stopOnSignals(controller);
process.stderr.write(`crash-controller: ready ${controller.url}\n`);
