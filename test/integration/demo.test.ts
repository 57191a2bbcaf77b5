/**
 * `npm run demo` as a newcomer runs it: a real process, offline, to the end (`--exit`), and the pull
 * request it made holds the demo agent's fix.
 */
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

it("npm run demo labels an issue, runs the agent in the sandbox and shows the pull request, its diff, the check run and the status comment", async () => {
  const r = await execa("npm", ["run", "--silent", "demo", "--", "--exit"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: "C.UTF-8" },
    extendEnv: false,
    reject: false,
    timeout: 110_000,
  });
  const text = `${r.stdout}\n${r.stderr}`;
  expect(r.exitCode, text).toBe(0);
  // It followed the job as it ran...
  // (States that last less than its poll, `queued` on a quiet machine, may pass unseen; the steps show them.)
  for (const state of ["running", "succeeded"]) expect(text).toContain(`● ${state}`);
  expect(text).toContain("step queued: done");
  expect(text).toContain("demo agent: found it");
  expect(text).toMatch(/live log page http:\/\/127\.0\.0\.1:\d+\/jobs\/\w+/);
  // ...and shows what GitHub would.
  expect(text).toMatch(/Check run agent-work: completed, success/);
  expect(text).toContain("### agent-work: done");
  expect(text).toMatch(/Pull request #\d+: The greeting has no space and shouts \(draft\)/);
  expect(text).toContain("Closes #1");
  expect(text).toContain("-  return `Hello,${name}!`;");
  expect(text).toContain("+  return `Hello, ${name}.`;");
}, 120_000);
