/**
 * `npm run demo`: the whole product on this machine, offline, with no GitHub account.
 *
 * The real controller (Probot server, scheduler, SQLite store, local backend, the real worker
 * script and its bubblewrap sandbox) runs against local stand-ins: GitHub's REST API answered in
 * this process (the same stand-in the tests use, test/support/fake-github.ts), a real git server on
 * 127.0.0.1 holding a small demo repository, and GitHub's sign-in page for the job page. An issue
 * is labelled `agent-work` with a signed webhook, exactly as GitHub would deliver it; the demo
 * agent (scripts/demo/demo-agent.mjs, or your own with DEMO_AGENT_CONFIG) fixes the bug, and the
 * demo prints what GitHub would show: the check run, the status comment, the pull request and its
 * diff. It then keeps running so the job page can be looked at, until Ctrl-C (`--exit`: stop at
 * the end, for scripts and tests).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startFakeGitHubOAuth } from "../../test/support/fake-github-oauth.js";
import { startHarness } from "../../test/support/harness.js";
import { DEFAULT_BRANCH, OWNER, REPO } from "../../test/support/payloads.js";

const DEMO_DIR = fileURLToPath(new URL(".", import.meta.url)).replace(/\/$/, "");
const exitAtEnd = process.argv.includes("--exit");
const color = process.stdout.isTTY ? (code: number, s: string) => `\x1b[${code}m${s}\x1b[0m` : (_: number, s: string) => s;
const bold = (s: string) => color(1, s);
const dim = (s: string) => color(2, s);
const out = (line = "") => process.stdout.write(`${line}\n`);

const DEMO_FILES = {
  "README.md": "# greeter\n\nSays hello. `node test.js` checks it.\n",
  "greet.js": "export function greet(name) {\n  return `Hello,${name}!`;\n}\n",
  "test.js":
    'import { greet } from "./greet.js";\nconst got = greet("Mona");\nif (got !== "Hello, Mona.") throw new Error(`greet("Mona") is ${JSON.stringify(got)}`);\nconsole.log("ok");\n',
};
const ISSUE = {
  title: "The greeting has no space and shouts",
  body: 'greet("Mona") returns "Hello,Mona!". It should be "Hello, Mona." — see test.js.',
};

function repoConfig(): string {
  if (process.env.DEMO_AGENT_CONFIG) return readFileSync(process.env.DEMO_AGENT_CONFIG, "utf8");
  return `agent: command\ncommand: ["node", "${path.join(DEMO_DIR, "demo-agent.mjs")}", "{prompt_file}"]\nmax_minutes: 5\n`;
}

/** A real agent's settings from your environment: AGENT_ENV_PASSTHROUGH and the variables it names. */
function passedThrough(): Record<string, string> {
  const names = (process.env.AGENT_ENV_PASSTHROUGH ?? "")
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  const env: Record<string, string> = {};
  for (const name of ["AGENT_ENV_PASSTHROUGH", ...names]) if (process.env[name] !== undefined) env[name] = process.env[name]!;
  return env;
}

async function main(): Promise<void> {
  out(bold("agent-work demo") + dim(" — everything runs on this machine; nothing reaches GitHub"));
  const oauth = await startFakeGitHubOAuth({
    clientId: "Iv1.demo",
    clientSecret: "demo-client-secret",
    users: [{ login: "Codertocat", id: 1, name: "You, as the repository's maintainer", permission: "write" }],
  });
  const h = await startHarness({
    autoSchedule: true,
    secondsPerMinute: 60,
    files: DEMO_FILES,
    repoConfigYaml: repoConfig(),
    env: {
      ...oauth.env(),
      LOG_LEVEL: "warn",
      SANDBOX_RO_BINDS: DEMO_DIR,
      ...(process.env.DEMO_SANDBOX_RO_BINDS ? { SANDBOX_RO_BINDS: `${DEMO_DIR},${process.env.DEMO_SANDBOX_RO_BINDS}` } : {}),
      ...passedThrough(),
    },
  });
  let closing = false;
  const close = async (code: number) => {
    if (closing) return;
    closing = true;
    await h.close().catch(() => {});
    await oauth.close().catch(() => {});
    process.exit(code);
  };
  process.on("SIGINT", () => void close(0));
  process.on("SIGTERM", () => void close(0));

  out(`${dim("controller")}  ${h.controller.url}  (the real one: webhook server, scheduler, SQLite in ${h.dataDir})`);
  out(`${dim("repository")}  ${OWNER}/${REPO} on a local git server, default branch ${DEFAULT_BRANCH}`);
  out(`${dim("issue #1")}    ${ISSUE.title}`);
  out();
  out(`${bold("→")} You add the label ${bold("agent-work")} to issue #1 (a signed issues.labeled webhook, as GitHub sends it)`);
  const delivered = await h.deliverLabel({ number: 1, title: ISSUE.title, body: ISSUE.body });
  out(`  the controller answered ${delivered.status} in ${Math.round(delivered.ms)} ms`);

  // Follow the job: every state, step and log line as it happens.
  let jobId: string | undefined;
  let lastState = "";
  const stepsSeen = new Map<string, string>();
  let logsSeen = 0;
  for (;;) {
    const [job] = await h.controller.store.list();
    if (job) {
      if (!jobId) {
        jobId = job.id;
        out(`  job ${job.id}: live log page ${bold(`${h.controller.url}/jobs/${job.id}`)} ${dim("(sign in as Codertocat on the stand-in GitHub page)")}`);
      }
      if (job.state !== lastState) {
        lastState = job.state;
        out(`${bold("●")} ${job.state}`);
      }
      for (const s of job.steps) {
        if (stepsSeen.get(s.name) === s.status) continue;
        stepsSeen.set(s.name, s.status);
        if (s.status !== "pending") out(`    step ${s.name}: ${s.status}${s.detail ? dim(` — ${s.detail}`) : ""}`);
      }
      const lines = await h.controller.logs.read(job.id);
      for (const l of lines.slice(logsSeen)) out(dim(`      | ${l.line}`));
      logsSeen = lines.length;
      if (["succeeded", "failed", "cancelled", "timed_out"].includes(job.state)) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  // The final status reaches GitHub right after the state: let the publisher finish.
  await h.controller.scheduler.drain();
  await new Promise((resolve) => setTimeout(resolve, 1500));

  out();
  out(bold("What GitHub shows now"));
  const check = h.github.checkRuns.at(-1);
  if (check) out(`${bold("Check run")} ${check.name}: ${check.status}${check.conclusion ? `, ${check.conclusion}` : ""} on ${check.head_sha.slice(0, 7)}`);
  const status = [...h.github.comments.values()].at(-1);
  if (status) {
    out(bold("Status comment on issue #1:"));
    for (const line of status
      .replace(/<!--[\s\S]*?-->/g, "")
      .trim()
      .split("\n"))
      out(`  ${line}`);
  }
  const pr = h.github.pulls.at(-1);
  // The request that opened it holds the title and body the controller wrote.
  const opened = h.github.calls.filter((c) => c.method === "POST" && c.route.endsWith("/pulls")).at(-1)?.body;
  if (pr) {
    out(`${bold(`Pull request #${pr.number}`)}: ${opened?.title ?? ""}${pr.draft ? " (draft)" : ""}  ${dim(`${pr.head.ref} → ${pr.base.ref}`)}`);
    for (const line of String(opened?.body ?? "")
      .replace(/<!--[\s\S]*?-->/g, "")
      .trim()
      .split("\n")
      .slice(0, 12))
      out(`  ${line}`);
    out(bold("Its diff:"));
    const diff = execFileSync("git", ["--git-dir", h.seeded.dir, "diff", `refs/heads/${DEFAULT_BRANCH}`, `refs/heads/${pr.head.ref}`], { encoding: "utf8" });
    for (const line of diff.trimEnd().split("\n"))
      out(`  ${line.startsWith("+") && !line.startsWith("+++") ? color(32, line) : line.startsWith("-") && !line.startsWith("---") ? color(31, line) : line}`);
  } else {
    out("No pull request was opened: the status comment above says why.");
  }
  out();
  if (exitAtEnd) return close(pr ? 0 : 1);
  out(`The controller keeps running: open ${bold(`${h.controller.url}/jobs/${jobId}`)} to see the job page. Ctrl-C to stop.`);
}

main().catch((err) => {
  console.error("the demo failed:", err instanceof Error ? err.stack : err);
  process.exit(1);
});
