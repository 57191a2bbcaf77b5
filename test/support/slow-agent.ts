/**
 * A slow fake agent (test/fixtures/fake-agent.mjs, FAKE_AGENT:slow) that runs until the test lets
 * it finish, instead of a fixed few seconds the test had to fit its part into: the part (a push,
 * a comment, a signal to the controller) surely happens while the agent runs, and nothing waits
 * out the rest. The agent waits for a file in a folder of its own that its sandbox may read (as
 * nobody, on the local backend); the folder goes when the test ends.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { onTestFinished } from "vitest";
import { FIXTURES } from "./harness.js";

export interface SlowAgent {
  /** The issue body (or instructions) that picks this agent. */
  body: string;
  /** Controller settings that let the sandboxed agent see its file: merge into the harness's or site's env. */
  env: { SANDBOX_RO_BINDS: string };
  /** Lets the agent (and any later run of the same job) finish at once. */
  finish(): void;
}

/** Call inside a test. */
export function slowAgent(): SlowAgent {
  const dir = mkdtempSync(path.join(tmpdir(), "agent-work-gate-"));
  chmodSync(dir, 0o755);
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const gate = path.join(dir, "finish");
  return {
    body: `FAKE_AGENT:slow\nFAKE_AGENT_ARGS: ${JSON.stringify({ until: gate })}`,
    env: { SANDBOX_RO_BINDS: `${FIXTURES.replace(/\/$/, "")},${dir}` },
    finish: () => writeFileSync(gate, ""),
  };
}
