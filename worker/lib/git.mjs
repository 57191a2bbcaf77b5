// Every git command the worker runs, and the credential it hands to git.
//
// The worker's git directory lives in the job's folder beside the work tree, where the sandbox
// never shows it; the agent gets a repository of its own in the work tree (prepareAgentRepository)
// that nothing here ever reads. Every command runs with an explicit git directory and work tree
// (no discovery), no system or global config, and a fixed set of `-c` settings that the work tree
// cannot extend: no hooks, no fsmonitor, no untracked cache, no submodule recursion, a protocol
// allow-list holding only the remote's own scheme, no redirects, and a credential helper that
// answers for this job's remote alone (scheme, host and path) and for nothing else.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { emitLog, redact } from "./output.mjs";
import { children, DEFAULT_PATH } from "./processes.mjs";

const MAX_STDERR = 64 * 1024;

/** Network settings a host may need; nothing else of the worker's environment reaches git. */
const PASSED_ENV = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO"];

function quoteForShell(s) {
  if (s.includes("'")) throw new Error(`cannot quote ${JSON.stringify(s)} for git's credential helper`);
  return `'${s}'`;
}

/** What git must be told on every command; `remoteUrl` fixes the only scheme it may speak. */
function fixedConfig(remoteUrl, privateDir) {
  const scheme = new URL(remoteUrl).protocol.replace(/:$/, "");
  const settings = {
    "core.hooksPath": "/dev/null",
    "core.fsmonitor": "false",
    "core.untrackedCache": "false",
    "core.splitIndex": "false",
    "core.symlinks": "true",
    "core.autocrlf": "false",
    "core.attributesFile": "/dev/null",
    "core.excludesFile": "/dev/null",
    "core.protectNTFS": "true",
    "core.protectHFS": "true",
    "core.pager": "cat",
    "core.askPass": "",
    "core.sshCommand": "false",
    "diff.external": "",
    "submodule.recurse": "false",
    "fetch.recurseSubmodules": "false",
    "push.recurseSubmodules": "no",
    "protocol.allow": "never",
    [`protocol.${scheme}.allow`]: "always",
    "http.followRedirects": "false",
    "gc.auto": "0",
    "maintenance.auto": "false",
    "commit.gpgSign": "false",
    "tag.gpgSign": "false",
    // Only the ownership check decides: the worker's git dir and work tree must be its own.
    "safe.directory": "",
    "credential.useHttpPath": "true",
  };
  const args = [];
  for (const [k, v] of Object.entries(settings)) args.push("-c", `${k}=${v}`);
  // An empty helper first clears any list; then ours, which checks the remote before answering.
  args.push(
    "-c",
    "credential.helper=",
    "-c",
    `credential.helper=!${quoteForShell(process.execPath)} ${quoteForShell(path.join(privateDir, "credential.mjs"))}`,
  );
  return args;
}

/**
 * A git runner bound to one job: `gitDir` and `workTree` (absent for a clone, which makes them),
 * the remote whose scheme and credential it allows, and the worker's private folder.
 */
export function createGit({ gitDir, workTree, remoteUrl, privateDir }) {
  const config = fixedConfig(remoteUrl, privateDir);
  const scheme = new URL(remoteUrl).protocol.replace(/:$/, "");
  const env = { PATH: process.env.PATH || DEFAULT_PATH, LANG: process.env.LANG || "C.UTF-8", HOME: privateDir };
  for (const k of PASSED_ENV) if (process.env[k]) env[k] = process.env[k];
  Object.assign(env, {
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_ATTR_NOSYSTEM: "1",
    GIT_TERMINAL_PROMPT: "0",
    GIT_NO_REPLACE_OBJECTS: "1",
    GIT_ALLOW_PROTOCOL: scheme,
    GIT_PROTOCOL_FROM_USER: "0",
    GIT_OPTIONAL_LOCKS: "0",
    XDG_CONFIG_HOME: privateDir,
  });

  /**
   * Runs one git command. `dirs` overrides the git dir and work tree (the agent's repository is
   * made with it); `maxStdout` stops reading (and stops git) past that many characters.
   */
  function run(args, { cwd = workTree ?? path.dirname(gitDir), dirs, maxStdout } = {}) {
    const where = dirs ?? { gitDir, workTree };
    const childEnv = { ...env };
    if (where.gitDir) childEnv.GIT_DIR = where.gitDir;
    if (where.workTree) childEnv.GIT_WORK_TREE = where.workTree;
    return new Promise((resolve) => {
      const child = spawn("git", [...config, ...args], { cwd, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
      children.add(child);
      let stdout = "";
      let stderr = "";
      let truncated = false;
      child.stdout.setEncoding("utf8").on("data", (d) => {
        if (truncated) return;
        stdout += d;
        if (maxStdout !== undefined && stdout.length > maxStdout) {
          truncated = true;
          stdout = stdout.slice(0, maxStdout);
          child.kill("SIGKILL");
        }
      });
      child.stderr.setEncoding("utf8").on("data", (d) => {
        if (stderr.length < MAX_STDERR) stderr += d;
      });
      child.on("error", (err) => {
        children.delete(child);
        resolve({ code: -1, stdout, stderr: String(err.message), truncated });
      });
      child.on("close", (code) => {
        children.delete(child);
        resolve({ code: truncated ? 0 : (code ?? -1), stdout, stderr, truncated });
      });
    });
  }

  async function ok(args, what, options) {
    const r = await run(args, options);
    if (r.code !== 0) throw new Error(`${what} failed: ${tail(r.stderr) || `git exited ${r.code}`}`);
    return r.stdout.trim();
  }

  return { run, ok, gitDir, workTree };
}

export function tail(text, lines = 5) {
  return redact(text.trim().split("\n").slice(-lines).join(" | "));
}

const HELPER = `// agent-work's git credential helper: answers \`get\` with the job's token for the job's own
// remote (scheme, host and path exactly), and nothing for any other.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
const dir = path.dirname(fileURLToPath(import.meta.url));
if (process.argv[2] !== "get") process.exit(0);
let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) {
  input += chunk;
  if (input.length > 65536) process.exit(0);
}
const asked = {};
for (const line of input.split("\\n")) {
  const eq = line.indexOf("=");
  if (eq > 0) asked[line.slice(0, eq)] = line.slice(eq + 1);
}
let expected, token;
try {
  expected = JSON.parse(fs.readFileSync(path.join(dir, "remote.json"), "utf8"));
  token = fs.readFileSync(path.join(dir, "token"), "utf8");
} catch {
  process.exit(0);
}
if (asked.protocol === expected.protocol && asked.host === expected.host && expected.paths.includes(asked.path ?? "")) {
  process.stdout.write("username=x-access-token\\npassword=" + token + "\\n");
}
`;

/**
 * Puts the token where the credential helper finds it (a 0600 file in the private folder), for
 * `remoteUrl` only. Disarm as soon as git is done with it.
 */
export function armCredentials(privateDir, token, remoteUrl) {
  const url = new URL(remoteUrl);
  const raw = url.pathname.replace(/^\//, "");
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // keep the raw form only
  }
  const remote = { protocol: url.protocol.replace(/:$/, ""), host: url.host, paths: [...new Set([raw, decoded])] };
  fs.writeFileSync(path.join(privateDir, "credential.mjs"), HELPER, { mode: 0o700 });
  fs.writeFileSync(path.join(privateDir, "remote.json"), JSON.stringify(remote), { mode: 0o600 });
  fs.writeFileSync(path.join(privateDir, "token"), token, { mode: 0o600 });
}

export function disarmCredentials(privateDir) {
  fs.rmSync(path.join(privateDir, "token"), { force: true });
}

/**
 * Gives the agent a repository of its own in the work tree: HEAD, the base branch, origin's URL
 * (without credentials) and the index as the worker's clone has them, with the worker's objects
 * borrowed read-only through alternates (the sandbox mounts them read-only). The agent may do
 * anything to it; the worker never reads it again and removes it before committing.
 */
export async function prepareAgentRepository(git, { repo, baseSha, baseBranch, cloneUrl, author }) {
  const agentGitDir = path.join(repo, ".git");
  fs.rmSync(agentGitDir, { recursive: true, force: true });
  const dirs = { gitDir: agentGitDir, workTree: repo };
  await git.ok(["init", "--quiet"], "git init", { dirs });
  fs.writeFileSync(path.join(agentGitDir, "objects", "info", "alternates"), `${path.join(git.gitDir, "objects")}\n`);
  // Each command below takes a lock of its own (one ref, HEAD, the config file), so they run side
  // by side: the agent's start waits for the slowest, not for their sum. The config's writes stay in
  // sequence (two at once would find config.lock taken and fail); `remote add` writes origin's url
  // and its default fetch refspec in one.
  const configured = (async () => {
    await git.ok(["remote", "add", "--", "origin", cloneUrl], "git remote add", { dirs });
    await git.ok(["config", "user.name", author.name], "git config", { dirs });
    await git.ok(["config", "user.email", author.email], "git config", { dirs });
  })();
  const settled = await Promise.allSettled([
    git.ok(["update-ref", `refs/heads/${baseBranch}`, baseSha], "update-ref", { dirs }),
    git.ok(["update-ref", `refs/remotes/origin/${baseBranch}`, baseSha], "update-ref", { dirs }),
    git.ok(["symbolic-ref", "HEAD", `refs/heads/${baseBranch}`], "symbolic-ref", { dirs }),
    configured,
  ]);
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  fs.copyFileSync(path.join(git.gitDir, "index"), path.join(agentGitDir, "index"));
}

/** Makes the worker's objects readable (never writable) by the sandbox's user. */
export function shareObjectsReadOnly(gitDir) {
  const stack = [path.join(gitDir, "objects")];
  while (stack.length > 0) {
    const p = stack.pop();
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st || st.isSymbolicLink()) continue;
    if (st.isDirectory()) {
      fs.chmodSync(p, 0o755);
      for (const name of fs.readdirSync(p)) stack.push(path.join(p, name));
    } else {
      fs.chmodSync(p, 0o444);
    }
  }
}

/**
 * Whether `branch` exists at `remoteUrl` (credentials armed by the caller). Only an exact ref
 * counts: ls-remote matches its pattern against the tail of every ref name.
 */
export async function remoteHasBranch(git, remoteUrl, branch, cwd) {
  const ref = `refs/heads/${branch}`;
  const listed = await git.ok(["ls-remote", "--heads", "--", remoteUrl, ref], "ls-remote", { cwd, dirs: {} });
  return listed.split("\n").some((line) => line.split("\t")[1] === ref);
}

/** What git says when a push is not a fast-forward of the branch as the remote has it now. */
const NOT_FAST_FORWARD = /\[rejected\]|non-fast-forward|fetch first|Updates were rejected/;

/**
 * Pushes `headSha` (the agent's commit) to `branch`. When someone moved the branch
 * while the agent worked, the push is refused; then the branch is fetched, the agent's change is
 * merged onto its new head without a work tree (`merge-tree --write-tree`, objects only: nothing
 * of the agent's tree is read from disk, no driver but git's own runs), committed with the same
 * message on top of it, and pushed once more. A conflict, or a second refusal, is the answer.
 * Returns `{ ok: true, headSha, moved }` or `{ ok: false, message }`.
 */
export async function pushMovingBranch(git, { cwd, cloneUrl, branch, headSha, message, author }) {
  const push = (sha) => git.run(["push", "--quiet", "--no-verify", "--", cloneUrl, `${sha}:refs/heads/${branch}`]);
  const first = await push(headSha);
  if (first.code === 0) return { ok: true, headSha, moved: false };
  if (!NOT_FAST_FORWARD.test(first.stderr)) return { ok: false, message: `push failed: ${tail(first.stderr) || `git exited ${first.code}`}` };

  await git.ok(["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--", cloneUrl, `refs/heads/${branch}`], "fetch");
  const theirs = await git.ok(["rev-parse", "--verify", "FETCH_HEAD^{commit}"], "rev-parse");
  const movedNote = `the branch ${branch} moved while the agent worked (it is now at ${theirs.slice(0, 12)})`;
  emitLog("worker", `${movedNote}; putting the agent's change on top of it`);
  // No work tree for these: git looks only at objects (and the job folder, which the agent never saw).
  const dirs = { gitDir: git.gitDir };
  const merged = await git.run(["merge-tree", "--write-tree", "--name-only", "--no-messages", theirs, headSha], { cwd, dirs, maxStdout: 200_000 });
  if (merged.code === 1) {
    const files = merged.stdout
      .split("\n")
      .slice(1)
      .filter((f) => f.length > 0);
    const shown = files.slice(0, 5).join(", ") + (files.length > 5 ? ` and ${files.length - 5} more` : "");
    return { ok: false, message: `${movedNote}, and the agent's change conflicts with it in ${shown || "some files"}; nothing was pushed` };
  }
  if (merged.code !== 0)
    return {
      ok: false,
      message: `${movedNote}, and git could not combine the two (${tail(merged.stderr) || `git merge-tree exited ${merged.code}`}); nothing was pushed`,
    };
  const tree = merged.stdout.split("\n")[0].trim();
  if (!/^[0-9a-f]{40,64}$/.test(tree)) return { ok: false, message: `${movedNote}, and git's merge gave no tree; nothing was pushed` };
  // Nothing of ours is left once theirs holds it already (someone pushed the same change).
  const theirTree = await git.ok(["rev-parse", "--verify", `${theirs}^{tree}`], "rev-parse");
  if (tree === theirTree) return { ok: true, headSha: theirs, moved: true };
  const combined = await git.ok(
    ["-c", `user.name=${author.name}`, "-c", `user.email=${author.email}`, "commit-tree", tree, "-p", theirs, "-m", message],
    "commit-tree",
    { cwd, dirs },
  );
  const second = await push(combined);
  if (second.code !== 0)
    return {
      ok: false,
      message: `${movedNote}, and the push of the agent's change on top of it failed too: ${tail(second.stderr) || `git exited ${second.code}`}`,
    };
  emitLog("worker", `pushed the agent's change on top of ${theirs.slice(0, 12)}`);
  return { ok: true, headSha: combined, moved: true };
}
