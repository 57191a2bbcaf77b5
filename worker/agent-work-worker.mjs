#!/usr/bin/env node
// agent-work worker script: clone, run the agent in a sandbox, commit, push.
//
// Plain JavaScript with Node built-ins only: it is copied verbatim onto workers (VMs, SSH hosts,
// pods). It reads ONE JSON document (WorkerInput, see src/worker/protocol.ts) from stdin and speaks
// the progress protocol on stdout: one JSON object per line (step / log / result), ending with
// exactly one `result`.
//
// The token is the one secret here. It lives in a 0600 file in a private 0700 directory only while
// git clones or pushes, reaches git through a GIT_ASKPASS script that reads that file, and is never
// in argv, in a child's environment, in a remote URL, in .git/config or on stdout (every line goes
// through a redaction of the token itself). The agent is treated as hostile: the token file is gone
// before it starts, it runs in bubblewrap with its own PID namespace and exactly the environment it
// was given, and after it exits the worker neither runs its hooks nor trusts its .git/config.

import { spawn } from "node:child_process";
import { Buffer } from "node:buffer";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const KILL_GRACE_MS = 5000;
const MAX_LOG_LINE = 8000;
const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";
const OUTCOMES = new Set(["pushed", "no_changes", "agent_failed", "timed_out", "error"]);
// Git config that must hold for every git command the worker runs after the agent has had the
// repository: no hooks, no fsmonitor command, no credential helper that could keep the token.
const SAFE_GIT = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "credential.helper="];
const SAFE_NAME = /^(?!-)(?!.*\.\.)(?!\/)[A-Za-z0-9._/-]{1,200}$/;

/** Strings that must never leave this process (filled once the input is read). */
let secrets = [];
let resultEmitted = false;
/** Children the worker started that a SIGTERM must take down (git runs, the agent's group). */
const children = new Set();
const state = { privateDir: null, agentPid: null, baseSha: undefined };

// Anything shaped like a GitHub token (both the 40-character and the ~520-character JWT format).
const TOKEN_SHAPE = /\bgh[pousr]_[A-Za-z0-9_.-]{20,}/g;

function redact(text) {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join("[REDACTED]");
  return out.replace(TOKEN_SHAPE, "[REDACTED]");
}

function emit(event) {
  process.stdout.write(redact(JSON.stringify(event)) + "\n");
}

function emitStep(step, status, detail) {
  emit(detail === undefined ? { type: "step", step, status, at: Date.now() } : { type: "step", step, status, at: Date.now(), detail: redact(String(detail)) });
}

function emitLog(stream, line) {
  const clean = redact(line);
  emit({ type: "log", stream, line: clean.length > MAX_LOG_LINE ? clean.slice(0, MAX_LOG_LINE) + "…" : clean, at: Date.now() });
}

function emitResult(result) {
  if (resultEmitted) return;
  resultEmitted = true;
  emit({ type: "result", result: { ...result, message: redact(result.message) }, at: Date.now() });
}

// ---- input -------------------------------------------------------------------------------------

/** Reads stdin up to the first newline or EOF: the controller may keep the channel open. */
function readFirstDocument(stream) {
  return new Promise((resolve, reject) => {
    let text = "";
    const done = () => {
      stream.off("data", onData);
      stream.off("end", done);
      stream.off("error", reject);
      stream.pause();
      resolve(text.split("\n")[0]);
    };
    const onData = (chunk) => {
      text += chunk;
      if (text.includes("\n")) done();
    };
    stream.setEncoding("utf8");
    stream.on("data", onData);
    stream.on("end", done);
    stream.on("error", reject);
  });
}

function validateInput(v) {
  const problems = [];
  const str = (k) => typeof v?.[k] === "string" && v[k].length > 0;
  if (typeof v !== "object" || v === null) throw new Error("input is not a JSON object");
  for (const k of ["jobId", "cloneUrl", "baseBranch", "branch", "token", "prompt", "commitMessage"]) {
    if (!str(k)) problems.push(`${k} must be a non-empty string`);
  }
  if (str("cloneUrl")) {
    let url;
    try {
      url = new URL(v.cloneUrl);
    } catch {
      problems.push("cloneUrl is not a URL");
    }
    if (url && url.protocol !== "https:" && url.protocol !== "http:") problems.push("cloneUrl must be http(s)");
    // A credential in the URL would end up in .git/config, where the agent can read it.
    if (url && (url.username || url.password)) problems.push("cloneUrl must not carry credentials");
  }
  for (const k of ["baseBranch", "branch"]) if (str(k) && !SAFE_NAME.test(v[k])) problems.push(`${k} is not a safe branch name`);
  if (v.steering !== undefined) {
    const st = v.steering;
    if (typeof st?.fromBranch !== "string" || !SAFE_NAME.test(st.fromBranch)) problems.push("steering.fromBranch is not a safe branch name");
    if (!Array.isArray(st?.paths) || !st.paths.every((p) => typeof p === "string" && SAFE_NAME.test(p) && !path.isAbsolute(p))) {
      problems.push("steering.paths must be relative paths");
    }
  }
  if (!Array.isArray(v.agentArgv) || v.agentArgv.length === 0 || !v.agentArgv.every((a) => typeof a === "string")) {
    problems.push("agentArgv must be a non-empty array of strings");
  }
  if (typeof v.author?.name !== "string" || typeof v.author?.email !== "string") problems.push("author needs name and email");
  if (typeof v.agentTimeoutSeconds !== "number" || !(v.agentTimeoutSeconds > 0)) problems.push("agentTimeoutSeconds must be > 0");
  if (typeof v.agentEnv !== "object" || v.agentEnv === null || Object.values(v.agentEnv).some((x) => typeof x !== "string")) {
    problems.push("agentEnv must map names to strings");
  }
  const sb = v.sandbox;
  if (sb?.kind === "bwrap") {
    if (!Array.isArray(sb.roBinds) || !sb.roBinds.every((p) => typeof p === "string" && path.isAbsolute(p))) {
      problems.push("sandbox.roBinds must be absolute paths");
    }
    if (typeof sb.shareNet !== "boolean") problems.push("sandbox.shareNet must be a boolean");
  } else if (sb?.kind !== "none") {
    problems.push('sandbox.kind must be "bwrap" or "none"');
  }
  if (problems.length > 0) throw new Error(problems.join("; "));
  return v;
}

// ---- credentials -------------------------------------------------------------------------------

function makePrivateDir() {
  // /dev/shm keeps the token off disk; bwrap gives the agent its own empty /dev and /tmp, so
  // neither location is visible from inside the sandbox.
  for (const base of ["/dev/shm", os.tmpdir()]) {
    try {
      const dir = fs.mkdtempSync(path.join(base, "agent-work-"));
      fs.chmodSync(dir, 0o700);
      return dir;
    } catch {
      // try the next location
    }
  }
  throw new Error("cannot create a private directory in /dev/shm or the temp dir");
}

function tokenPath() {
  return path.join(state.privateDir, "token");
}
function askpassPath() {
  return path.join(state.privateDir, "askpass.sh");
}

function armCredentials(token) {
  fs.writeFileSync(tokenPath(), token, { mode: 0o600 });
  const script = `#!/bin/sh\ncase "$1" in\n  *Username*) echo x-access-token ;;\n  *) cat '${tokenPath()}' ;;\nesac\n`;
  fs.writeFileSync(askpassPath(), script, { mode: 0o700 });
}

function disarmCredentials() {
  for (const p of [tokenPath(), askpassPath()]) fs.rmSync(p, { force: true });
}

// ---- processes ---------------------------------------------------------------------------------

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

function gitEnv() {
  const env = { PATH: process.env.PATH || DEFAULT_PATH, LANG: process.env.LANG || "C.UTF-8", HOME: state.privateDir };
  // Network settings a host may need; nothing else of the worker's environment reaches git.
  for (const k of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO"]) {
    if (process.env[k]) env[k] = process.env[k];
  }
  return {
    ...env,
    GIT_TERMINAL_PROMPT: "0",
    GIT_ASKPASS: askpassPath(),
    // The worker's HOME may be a folder the agent can write; no global config is trusted.
    GIT_CONFIG_GLOBAL: "/dev/null",
  };
}

function git(args, cwd) {
  return new Promise((resolve) => {
    const child = spawn("git", args, { cwd, env: gitEnv(), stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.on("error", (err) => {
      children.delete(child);
      resolve({ code: -1, stdout, stderr: String(err.message) });
    });
    child.on("close", (code) => {
      children.delete(child);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

function tail(text, lines = 5) {
  return redact(text.trim().split("\n").slice(-lines).join(" | "));
}

async function gitOk(args, cwd, what) {
  const r = await git(args, cwd);
  if (r.code !== 0) throw new Error(`${what} failed: ${tail(r.stderr) || `git exited ${r.code}`}`);
  return r.stdout.trim();
}

// ---- the agent ---------------------------------------------------------------------------------

function fillPlaceholders(argv, prompt, promptFile) {
  // One pass, so a prompt that itself contains "{prompt_file}" is not expanded again.
  return argv.map((a) => a.replace(/\{(prompt|prompt_file)\}/g, (_, name) => (name === "prompt" ? prompt : promptFile)));
}

function agentEnvironment(input, cwd) {
  return { PATH: DEFAULT_PATH, HOME: path.join(cwd, "home"), LANG: "C.UTF-8", ...input.agentEnv };
}

/** bwrap options; sent through `--args 3` so the agent's environment never sits in an argv. */
function bwrapOptions(input, cwd, env) {
  const repo = path.join(cwd, "repo");
  const opts = ["--die-with-parent", "--new-session", "--unshare-all"];
  if (input.sandbox.shareNet) opts.push("--share-net");
  // bwrap keeps every capability when started by root; the agent needs none.
  opts.push("--cap-drop", "ALL");
  opts.push("--ro-bind", "/usr", "/usr");
  for (const p of ["/bin", "/lib", "/lib64", "/sbin", "/etc"]) opts.push("--ro-bind-try", p, p);
  // /tmp first: the work dir or a read-only path may live under the host's /tmp.
  opts.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp");
  opts.push("--bind", cwd, cwd);
  for (const p of input.sandbox.roBinds) opts.push("--ro-bind", p, p);
  opts.push("--clearenv");
  for (const [k, v] of Object.entries(env)) opts.push("--setenv", k, v);
  opts.push("--chdir", repo);
  return opts;
}

function pipeLines(stream, streamName) {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      emitLog(streamName, buf.slice(0, i).replace(/\r$/, ""));
      buf = buf.slice(i + 1);
    }
  });
  return new Promise((resolve) => {
    stream.on("close", () => {
      if (buf.length > 0) emitLog(streamName, buf);
      buf = "";
      resolve();
    });
  });
}

function runAgent(input, cwd, argv) {
  const repo = path.join(cwd, "repo");
  const env = agentEnvironment(input, cwd);
  fs.mkdirSync(env.HOME, { recursive: true });
  let child;
  if (input.sandbox.kind === "bwrap") {
    child = spawn("bwrap", ["--args", "3", "--", ...argv], {
      cwd: repo,
      env: { PATH: DEFAULT_PATH },
      stdio: ["ignore", "pipe", "pipe", "pipe"],
      detached: true,
    });
    const args = bwrapOptions(input, cwd, env);
    child.stdio[3].on("error", () => {});
    child.stdio[3].end(Buffer.from(args.map((a) => a + "\0").join(""), "utf8"));
  } else {
    child = spawn(argv[0], argv.slice(1), { cwd: repo, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  }
  state.agentPid = child.pid ?? null;
  const outputs = Promise.all([pipeLines(child.stdout, "stdout"), pipeLines(child.stderr, "stderr")]);

  return new Promise((resolve) => {
    let timedOut = false;
    let killTimer;
    let settled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) killGroup(child.pid, "SIGTERM");
      killTimer = setTimeout(() => child.pid && killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS);
    }, input.agentTimeoutSeconds * 1000);
    const finish = async (exitCode, signal, spawnError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      // Whatever the agent left behind in its group (without bwrap's PID namespace) goes too.
      if (child.pid) killGroup(child.pid, "SIGKILL");
      state.agentPid = null;
      // A grandchild that escaped the group could hold the pipes open; do not wait for it forever.
      await Promise.race([outputs, new Promise((r) => setTimeout(r, 1000))]);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ exitCode, signal, timedOut, spawnError });
    };
    // "error" without "exit" is a failed spawn (ENOENT, EACCES).
    child.on("error", (err) => finish(null, null, err));
    child.on("exit", (code, signal) => finish(code, signal, undefined));
  });
}

// ---- after the agent ---------------------------------------------------------------------------

/** Puts back the repository state the worker trusts before any git command runs on it again. */
function reclaimRepository(repo, trustedConfig) {
  const dotGit = path.join(repo, ".git");
  const st = fs.lstatSync(dotGit, { throwIfNoEntry: false });
  if (!st || !st.isDirectory()) throw new Error("the agent replaced or removed .git; nothing was pushed");
  const configPath = path.join(dotGit, "config");
  fs.rmSync(configPath, { force: true });
  fs.writeFileSync(configPath, trustedConfig, { mode: 0o644 });
  // Alternates would let a commit reference objects from anywhere on this host.
  fs.rmSync(path.join(dotGit, "objects", "info", "alternates"), { force: true });
  fs.rmSync(path.join(dotGit, "objects", "info", "http-alternates"), { force: true });
}

/** True when `rel` resolves inside `repo` even through symlinks the agent may have planted. */
function insideRepo(repo, rel) {
  let dir = path.dirname(path.join(repo, rel));
  while (!fs.existsSync(dir)) dir = path.dirname(dir);
  const real = fs.realpathSync(dir);
  const root = fs.realpathSync(repo);
  return real === root || real.startsWith(root + path.sep);
}

/**
 * Makes `paths` in the working tree and index exactly what `treeish` has (absent where it has
 * none). Used on pull requests: the agent reads the base branch's steering files (AGENTS.md and
 * the like), not the PR author's, and afterwards the PR's own versions are put back so the swap
 * never lands in the commit.
 */
async function swapSteering(repo, treeish, paths) {
  for (const rel of paths) {
    if (!insideRepo(repo, rel)) throw new Error(`${rel} leads outside the repository`);
    await gitOk([...SAFE_GIT, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", rel], repo, "git rm");
    fs.rmSync(path.join(repo, rel), { recursive: true, force: true });
    const present = (await git([...SAFE_GIT, "ls-tree", "--name-only", treeish, "--", rel], repo)).stdout.trim();
    if (present) await gitOk([...SAFE_GIT, "checkout", treeish, "--", rel], repo, "checkout");
  }
}

function countLines(text) {
  return text.split("\0").filter((s) => s.length > 0).length;
}

// ---- the job -----------------------------------------------------------------------------------

async function runJob(input, cwd) {
  const repo = path.join(cwd, "repo");
  state.privateDir = makePrivateDir();
  emitLog("worker", `private dir ${state.privateDir} (mode 0700)`);

  // clone
  emitStep("clone", "started");
  fs.rmSync(repo, { recursive: true, force: true });
  armCredentials(input.token);
  let trustedConfig;
  try {
    await gitOk([...SAFE_GIT, "clone", "--quiet", "--single-branch", "--branch", input.baseBranch, "--", input.cloneUrl, repo], cwd, "clone");
    state.baseSha = await gitOk([...SAFE_GIT, "rev-parse", "HEAD"], repo, "rev-parse");
    trustedConfig = fs.readFileSync(path.join(repo, ".git", "config"), "utf8");
    if (input.steering) {
      await gitOk([...SAFE_GIT, "fetch", "--quiet", "--depth=1", "--", input.cloneUrl, `refs/heads/${input.steering.fromBranch}`], repo, "fetch");
      const from = await gitOk([...SAFE_GIT, "rev-parse", "FETCH_HEAD"], repo, "rev-parse");
      await swapSteering(repo, from, input.steering.paths);
      emitLog("worker", `agent-steering files taken from ${input.steering.fromBranch}`);
    }
  } catch (err) {
    emitStep("clone", "failed", err.message);
    return { outcome: "error", message: err.message, baseSha: state.baseSha };
  } finally {
    disarmCredentials();
  }
  emitStep("clone", "finished", state.baseSha);
  const baseSha = state.baseSha;

  // agent
  const promptFile = path.join(cwd, "prompt.md");
  fs.writeFileSync(promptFile, input.prompt, { mode: 0o644 });
  const argv = fillPlaceholders(input.agentArgv, input.prompt, promptFile);
  emitStep("agent", "started");
  const agent = await runAgent(input, cwd, argv);
  const agentOk = !agent.timedOut && !agent.spawnError && agent.exitCode === 0;
  const agentExitCode = agent.exitCode ?? null;
  let agentSummary;
  if (agent.timedOut) agentSummary = `the agent ran past ${input.agentTimeoutSeconds}s and was stopped`;
  else if (agent.spawnError) agentSummary = `the agent could not start: ${agent.spawnError.message}`;
  else if (agent.exitCode === 0) agentSummary = "the agent finished";
  else agentSummary = `the agent exited with ${agent.exitCode === null ? `signal ${agent.signal}` : `code ${agent.exitCode}`}`;
  emitStep("agent", agentOk ? "finished" : "failed", agentOk ? "exit 0" : agentSummary);
  const failedOutcome = agent.timedOut ? "timed_out" : "agent_failed";

  // commit
  emitStep("commit", "started");
  let headSha;
  let filesChanged;
  try {
    reclaimRepository(repo, trustedConfig);
    if (input.steering) await swapSteering(repo, "HEAD", input.steering.paths);
    await gitOk([...SAFE_GIT, "add", "-A"], repo, "git add");
    const staged = (await git([...SAFE_GIT, "diff", "--cached", "--quiet"], repo)).code === 1;
    const head = await gitOk([...SAFE_GIT, "rev-parse", "HEAD"], repo, "rev-parse");
    // The agent may have committed on its own: a clean tree on a moved HEAD is still work.
    if (!staged && head === baseSha) {
      emitStep("commit", "skipped", "no changes");
      emitStep("push", "skipped", "no changes");
      return agentOk
        ? { outcome: "no_changes", message: "the agent finished without changing any file", baseSha, agentExitCode, filesChanged: 0 }
        : { outcome: failedOutcome, message: `${agentSummary} and changed nothing`, baseSha, agentExitCode, filesChanged: 0 };
    }
    if (staged) {
      const { name, email } = input.author;
      await gitOk(
        [...SAFE_GIT, "-c", `user.name=${name}`, "-c", `user.email=${email}`, "-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "-m", input.commitMessage],
        repo,
        "commit",
      );
    }
    headSha = await gitOk([...SAFE_GIT, "rev-parse", "HEAD"], repo, "rev-parse");
    filesChanged = countLines(await gitOk([...SAFE_GIT, "diff", "--name-only", "-z", baseSha, headSha], repo, "diff"));
  } catch (err) {
    emitStep("commit", "failed", err.message);
    return { outcome: "error", message: `${agentSummary}; ${err.message}`, baseSha, agentExitCode };
  }
  emitStep("commit", "finished", headSha);

  // push: to the URL we were given, not to a remote name the agent could have redirected
  emitStep("push", "started");
  armCredentials(input.token);
  try {
    await gitOk([...SAFE_GIT, "push", "--quiet", "--no-verify", "--", input.cloneUrl, `HEAD:refs/heads/${input.branch}`], repo, "push");
  } catch (err) {
    emitStep("push", "failed", err.message);
    return { outcome: "error", message: `${agentSummary}; ${err.message}`, baseSha, headSha, agentExitCode, filesChanged };
  } finally {
    disarmCredentials();
  }
  emitStep("push", "finished", input.branch);
  const files = `${filesChanged} changed file${filesChanged === 1 ? "" : "s"}`;
  return {
    outcome: agentOk ? "pushed" : failedOutcome,
    message: agentOk ? `pushed ${files} to ${input.branch}` : `${agentSummary}; its partial work (${files}) is on ${input.branch}`,
    branch: input.branch,
    headSha,
    baseSha,
    filesChanged,
    agentExitCode,
  };
}

function removePrivateDir() {
  if (state.privateDir) fs.rmSync(state.privateDir, { recursive: true, force: true });
}

function stop(signal) {
  if (state.agentPid) killGroup(state.agentPid, "SIGKILL");
  for (const c of children) c.kill("SIGKILL");
  removePrivateDir();
  emitResult({ outcome: "error", message: `worker stopped by ${signal}`, baseSha: state.baseSha });
  process.exit(0);
}

async function main() {
  let input;
  try {
    const text = await readFirstDocument(process.stdin);
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      // JSON.parse quotes the input in its message, and the input holds the token.
      throw new Error("input is not valid JSON");
    }
    if (typeof parsed?.token === "string") secrets = [parsed.token];
    input = validateInput(parsed);
  } catch (err) {
    emitResult({ outcome: "error", message: `bad worker input: ${err.message}` });
    process.exitCode = 2;
    return;
  }
  const token = input.token;
  secrets = [token, encodeURIComponent(token), Buffer.from(`x-access-token:${token}`).toString("base64")];
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(s, () => stop(s));

  let result;
  try {
    result = await runJob(input, process.cwd());
  } catch (err) {
    result = { outcome: "error", message: `worker failed: ${err?.message ?? err}`, baseSha: state.baseSha };
  } finally {
    removePrivateDir();
  }
  if (!OUTCOMES.has(result.outcome)) result = { outcome: "error", message: `internal: unknown outcome ${result.outcome}` };
  emitResult(result);
  process.exit(0);
}

main();
