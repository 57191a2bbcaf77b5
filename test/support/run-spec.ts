import path from "node:path";
import { fileURLToPath } from "node:url";
import type { RunSpec } from "../../src/backends/types.js";
import type { GitServer } from "./git-http-server.js";

const FAKE_AGENT = fileURLToPath(new URL("../fixtures/fake-agent.mjs", import.meta.url));

/**
 * A job that runs the fake agent (test/fixtures/fake-agent.mjs, told what to do by its prompt) on a
 * fresh one-file repository on `git`, named `repo` (the job id unless given), in bubblewrap with no
 * network. The backend contract tests and benchmarks build their jobs with it; `over` changes a field.
 */
export async function fakeAgentSpec(git: GitServer, jobId: string, token: string, over: Partial<RunSpec> = {}, repo = jobId): Promise<RunSpec> {
  const { cloneUrl } = await git.createRepo("octo", repo, { "README.md": "# demo\n" });
  return {
    jobId,
    cloneUrl,
    baseBranch: "main",
    branch: `agent-work/${jobId}`,
    token,
    agentArgv: [process.execPath, FAKE_AGENT, "{prompt_file}"],
    prompt: "FAKE_AGENT:edit",
    commitMessage: `agent-work: ${jobId}`,
    author: { name: "agent-work[bot]", email: "bot@example.com" },
    agentTimeoutSeconds: 60,
    agentEnv: {},
    sandbox: { kind: "bwrap", roBinds: [path.dirname(FAKE_AGENT)], shareNet: false },
    ...over,
  };
}
