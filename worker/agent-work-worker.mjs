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
//
// The sandbox (see "the sandbox" below): bubblewrap gives the agent its own PID, IPC and UTS
// namespaces (and network, with `network: none`), the system folders read-only, its work dir
// read-write, a tmpfs /tmp and $HOME, and nothing else of the host's file tree. When the worker runs
// as root the agent runs as nobody (uid 65534): in a mount namespace a uid-0 agent would still own,
// and so read, every root-owned file it can see, such as /etc/shadow and the host's SSH keys.
// Limits: per process by prlimit (data, file size, no core dumps); per sandbox by a process count
// kept in a user namespace of the sandbox's own, and by a watchdog that counts the sandbox's tasks
// and memory every half second and its work dir's disk every few seconds, and stops the agent with
// a clear reason when one is over.

import { spawn, spawnSync } from "node:child_process";
import { Buffer } from "node:buffer";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const KILL_GRACE_MS = 5000;
const MAX_LOG_LINE = 8000;
const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";
const OUTCOMES = new Set(["pushed", "patch", "no_changes", "agent_failed", "timed_out", "error"]);
/** A patch returned instead of a push (no-secrets runs) is cut at this size. */
const MAX_PATCH_CHARS = 200_000;
// Git config that must hold for every git command the worker runs after the agent has had the
// repository: no hooks, no fsmonitor command, no credential helper that could keep the token.
const SAFE_GIT = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "credential.helper="];
const SAFE_NAME = /^(?!-)(?!.*\.\.)(?!\/)[A-Za-z0-9._/-]{1,200}$/;
/** Defaults when the controller sends no limits (they match its SANDBOX_MAX_* defaults). */
const DEFAULT_LIMITS = { memoryMb: 4096, maxProcesses: 512, maxDiskMb: 10240 };
const LIMIT_KEYS = ["memoryMb", "maxProcesses", "maxDiskMb"];

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
  for (const k of ["jobId", "cloneUrl", "baseBranch", "branch", "prompt", "commitMessage"]) {
    if (!str(k)) problems.push(`${k} must be a non-empty string`);
  }
  // A no-secrets run (a fork's pull request) has no token at all: it clones anonymously and
  // returns its change as a patch instead of pushing.
  if (v?.noSecrets === true) {
    if (v.token !== undefined && v.token !== "") problems.push("a noSecrets run must not carry a token");
  } else if (!str("token")) {
    problems.push("token must be a non-empty string");
  }
  if (v?.steering?.fromUrl !== undefined) {
    try {
      const u = new URL(v.steering.fromUrl);
      if (u.username || u.password) problems.push("steering.fromUrl must not carry credentials");
    } catch {
      problems.push("steering.fromUrl is not a URL");
    }
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
    if (sb.limits !== undefined) {
      if (typeof sb.limits !== "object" || sb.limits === null) problems.push("sandbox.limits must be an object");
      else for (const k of LIMIT_KEYS) if (sb.limits[k] !== undefined && !(Number.isInteger(sb.limits[k]) && sb.limits[k] > 0)) problems.push(`sandbox.limits.${k} must be a whole number > 0`);
    }
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

// ---- the sandbox -------------------------------------------------------------------------------

/** The agent's uid and gid when the worker runs as root: nobody, which owns no file on a normal host. */
const SANDBOX_UID = 65534;
/** Host folders the sandbox mounts read-only at the same path; tools run inside must live in one. */
const SYSTEM_DIRS = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"];
const MB = 1024 * 1024;
const WATCH_INTERVAL_MS = 500;
const DISK_CHECK_INTERVAL_MS = 5000;
const INSTALL_BWRAP = "install it (Debian/Ubuntu: apt-get install -y bubblewrap; Fedora/RHEL: dnf install -y bubblewrap)";

function under(dir, p) {
  return p === dir || p.startsWith(dir.endsWith("/") ? dir : dir + "/");
}

const CAP_SYS_ADMIN = 21;

function hasCapability(bit) {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync("/proc/self/status", "utf8"))?.[1];
    return hex !== undefined && ((BigInt(`0x${hex}`) >> BigInt(bit)) & 1n) === 1n;
  } catch {
    return false;
  }
}

function findTool(name) {
  for (const dir of (process.env.PATH || DEFAULT_PATH).split(":")) {
    if (!path.isAbsolute(dir)) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not in this folder
    }
  }
  return null;
}

/**
 * Decides, before anything is cloned, how the agent will be sandboxed here, or why it cannot be:
 * a host without bubblewrap refuses the job rather than run the agent unsandboxed.
 */
function planSandbox(input, cwd) {
  const sb = input.sandbox;
  if (sb.kind !== "bwrap") return { ok: true, plan: { kind: "none" } };
  const asRoot = process.getuid?.() === 0;
  // As root, bwrap builds the sandbox with the worker's own CAP_SYS_ADMIN (no user namespace, so
  // the agent can be dropped to nobody); root in a container usually lacks it.
  if (asRoot && !hasCapability(CAP_SYS_ADMIN)) {
    return { ok: false, message: "refused to run the agent: the worker runs as root without CAP_SYS_ADMIN (in a container?), so it cannot build the sandbox that runs the agent as nobody; run the controller (or log in to this host) as an unprivileged user instead" };
  }
  const tools = {};
  for (const name of ["bwrap", "prlimit", ...(asRoot ? ["setpriv", "unshare"] : [])]) tools[name] = findTool(name);
  if (!tools.bwrap) {
    return { ok: false, message: `refused to run the agent: bubblewrap (bwrap) is not installed on this host; ${INSTALL_BWRAP}, or start the controller with LOCAL_SANDBOX=none to run agents unsandboxed` };
  }
  // --perms on --tmpfs and --dir came with 0.5, --size with 0.7 (Ubuntu 22.04 has 0.6: no sizes).
  const version = /bubblewrap (\d+)\.(\d+)/.exec(spawnSync(tools.bwrap, ["--version"], { encoding: "utf8" }).stdout ?? "");
  const [major, minor] = version ? [Number(version[1]), Number(version[2])] : [0, 0];
  if (major === 0 && minor < 5) return { ok: false, message: `refused to run the agent: ${tools.bwrap} is ${version ? `bubblewrap ${major}.${minor}` : "not a bubblewrap this worker understands"}; the sandbox needs 0.5 or later` };
  const tmpfsSize = major > 0 || minor >= 7;
  const missing = Object.keys(tools).filter((name) => !tools[name]);
  if (missing.length > 0) {
    return { ok: false, message: `refused to run the agent: ${missing.join(", ")} not found on this host; install util-linux (apt-get install -y util-linux), which the sandbox's limits need` };
  }
  for (const name of ["prlimit", "setpriv", "unshare"]) {
    const p = tools[name] && fs.realpathSync(tools[name]);
    if (p && !SYSTEM_DIRS.some((d) => under(d, p))) return { ok: false, message: `refused to run the agent: ${name} is at ${p}, outside the system folders the sandbox mounts (${SYSTEM_DIRS.join(", ")})` };
    if (p) tools[name] = p;
  }
  // A read-only bind that holds the work dir would show the agent its neighbours: other jobs, the
  // controller's data folder and .env.
  const exposing = sb.roBinds.find((p) => under(p, cwd));
  if (exposing) return { ok: false, message: `refused to run the agent: the read-only path ${exposing} (SANDBOX_RO_BINDS) holds the job's work dir, and with it other jobs and the controller's data; name narrower folders` };
  const limits = { ...DEFAULT_LIMITS };
  for (const k of LIMIT_KEYS) if (sb.limits?.[k] !== undefined) limits[k] = sb.limits[k];
  return { ok: true, plan: { kind: "bwrap", asRoot, tools, limits, tmpfsSize, shareNet: sb.shareNet, roBinds: sb.roBinds } };
}

/** Gives a tree to another owner without following a link the agent may have planted in it. */
function chownTree(root, uid, gid) {
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop();
    let st;
    try {
      st = fs.lstatSync(p);
      fs.lchownSync(p, uid, gid);
      // The kernel clears set-id bits on chown; make sure, since the new owner may be root.
      if (!st.isSymbolicLink() && st.mode & 0o6000) fs.chmodSync(p, st.mode & 0o1777);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      let names = [];
      try {
        names = fs.readdirSync(p);
      } catch {
        // unreadable: nothing below to hand over
      }
      for (const name of names) stack.push(path.join(p, name));
    }
  }
}

/** Kilobytes the work dir takes on disk (blocks, as du counts them), or null if du fails outright. */
function diskUsageKb(dir) {
  return new Promise((resolve) => {
    const child = spawn("du", ["-sk", "-x", dir], { env: { PATH: DEFAULT_PATH, LANG: "C" }, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (out += d));
    child.on("error", () => resolve(null));
    // du exits 1 when a file vanishes under it, and still prints the total.
    child.on("close", () => {
      const kb = Number(/^(\d+)\s/m.exec(out)?.[1]);
      resolve(Number.isFinite(kb) ? kb : null);
    });
  });
}

function megabytes(kb) {
  return (kb / 1024).toFixed(1).replace(/\.0$/, "");
}

/** Every ancestor of `p` below `/`, outermost first. */
function ancestors(p) {
  const out = [];
  for (let d = path.dirname(p); d !== "/" && d !== "."; d = path.dirname(d)) out.unshift(d);
  return out;
}

/** bwrap options; sent through `--args 3` so the agent's environment never sits in an argv. */
function bwrapOptions(plan, cwd, env) {
  const repo = path.join(cwd, "repo");
  const opts = ["--die-with-parent", "--new-session"];
  if (plan.asRoot) {
    // bwrap stays root to mount; setpriv then drops to nobody, which needs these two and no more.
    opts.push("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try");
    if (!plan.shareNet) opts.push("--unshare-net");
    opts.push("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID");
  } else {
    opts.push("--unshare-all");
    if (plan.shareNet) opts.push("--share-net");
    opts.push("--cap-drop", "ALL");
  }
  opts.push("--ro-bind", "/usr", "/usr");
  for (const p of SYSTEM_DIRS.slice(1)) opts.push("--ro-bind-try", p, p);
  // Each tmpfs may hold at most the memory limit (the watchdog counts them against it anyway).
  const size = plan.tmpfsSize ? ["--size", String(plan.limits.memoryMb * MB)] : [];
  // /tmp first: the work dir or a read-only path may live under the host's /tmp.
  opts.push("--proc", "/proc", "--dev", "/dev", "--perms", "1777", ...size, "--tmpfs", "/tmp");
  // bwrap would copy the mode of each host folder on the way to a bind (0700 ones included), which
  // nobody could not pass; make them plain folders first.
  const made = new Set(["/tmp"]);
  for (const target of [cwd, ...plan.roBinds]) {
    for (const dir of ancestors(target)) {
      if (made.has(dir) || SYSTEM_DIRS.some((d) => under(d, dir)) || under("/proc", dir) || under("/dev", dir)) continue;
      made.add(dir);
      opts.push("--perms", "0755", "--dir", dir);
    }
  }
  opts.push("--bind", cwd, cwd);
  // $HOME is memory, not the work dir: what the agent keeps there dies with the sandbox.
  opts.push("--perms", plan.asRoot ? "0777" : "0700", ...size, "--tmpfs", env.HOME);
  for (const p of plan.roBinds) opts.push("--ro-bind", p, p);
  // The skeleton bwrap built (the folders on the way to the binds) is not somewhere to write.
  opts.push("--remount-ro", "/");
  opts.push("--clearenv");
  for (const [k, v] of Object.entries(env)) opts.push("--setenv", k, v);
  opts.push("--chdir", repo, "--info-fd", "4");
  return opts;
}

/** What runs inside bwrap before the agent: drop to nobody (as root), then the per-process limits. */
function innerCommand(plan, argv) {
  const { memoryMb, maxProcesses, maxDiskMb } = plan.limits;
  const limit = (name, value) => `--${name}=${value}:${value}`;
  const prlimit = [plan.tools.prlimit, limit("nproc", maxProcesses), limit("data", memoryMb * MB), limit("fsize", maxDiskMb * MB), limit("core", 0), "--"];
  if (!plan.asRoot) return [...prlimit, ...argv];
  // A user namespace of its own makes the process count the sandbox's alone: without one, every
  // process of nobody on the host would count against it.
  const drop = [plan.tools.setpriv, `--reuid=${SANDBOX_UID}`, `--regid=${SANDBOX_UID}`, "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--"];
  return [...drop, plan.tools.unshare, "--user", "--", ...prlimit, ...argv];
}

const TMPFS_MAGIC = 0x01021994;

/**
 * Bytes in use on one of the sandbox's tmpfs at `inside` (a path seen through /proc/<pid>/root);
 * 0 until it is mounted: until bwrap has built the sandbox, that path still leads to the host's
 * own folder `outside` (which may itself be a tmpfs), on the same device.
 */
function tmpfsUsed(inside, outside) {
  try {
    if (fs.statSync(inside).dev === fs.statSync(outside).dev) return 0;
    const st = fs.statfsSync(inside);
    return st.type === TMPFS_MAGIC ? (st.blocks - st.bfree) * st.bsize : 0;
  } catch {
    return 0;
  }
}

/**
 * Watches one sandbox from outside: every half second its tasks and memory (anonymous memory of
 * every process descended from its first one, plus what its /tmp and $HOME tmpfs hold), every few seconds
 * its work dir on disk. Calls `onLimit` once, with the reason, when a limit is passed.
 */
function watchSandbox(sandboxPid, cwd, home, limits, onLimit) {
  let fired = false;
  let atProcessLimit = 0;
  let peakMb = 0;
  const fire = (limit, message) => {
    if (fired) return;
    fired = true;
    onLimit(limit, message);
  };
  const tick = () => {
    // Everything descended from the sandbox's first process, nested PID namespaces included (an
    // agent may sandbox its own tools): parents as the host sees them.
    const children = new Map();
    let entries = [];
    try {
      entries = fs.readdirSync("/proc");
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
      try {
        const stat = fs.readFileSync(`/proc/${e}/stat`, "latin1");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (!children.has(ppid)) children.set(ppid, []);
        children.get(ppid).push(Number(e));
      } catch {
        // gone between readdir and read
      }
    }
    let tasks = 0;
    let anonKb = 0;
    const queue = [sandboxPid];
    for (let i = 0; i < queue.length && i < 100_000; i++) {
      const pid = queue[i];
      for (const c of children.get(pid) ?? []) queue.push(c);
      try {
        const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
        tasks += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 1);
        anonKb += Number(/^RssAnon:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {
        // gone
      }
    }
    const shared = tmpfsUsed(`/proc/${sandboxPid}/root/tmp`, "/tmp") + tmpfsUsed(`/proc/${sandboxPid}/root${home}`, home);
    const usedMb = Math.round((anonKb * 1024 + shared) / MB);
    peakMb = Math.max(peakMb, usedMb);
    if (usedMb > limits.memoryMb) fire("memory", `the agent held ${usedMb} MB of memory, over its limit of ${limits.memoryMb} MB, and was stopped`);
    // At the limit every fork fails; two looks in a row tell a fork bomb from a busy moment.
    atProcessLimit = tasks >= limits.maxProcesses - 1 ? atProcessLimit + 1 : 0;
    if (atProcessLimit >= 2) fire("processes", `the agent reached its limit of ${limits.maxProcesses} processes and threads (a fork bomb, or too many tools at once) and was stopped`);
  };
  let diskBusy = false;
  const diskTick = () => {
    if (diskBusy || fired) return;
    diskBusy = true;
    void diskUsageKb(cwd).then((kb) => {
      diskBusy = false;
      if (kb !== null && kb > limits.maxDiskMb * 1024) fire("disk", `the agent's work dir grew to ${megabytes(kb)} MB, over its limit of ${limits.maxDiskMb} MB; it was stopped and nothing was pushed`);
    });
  };
  const timer = setInterval(tick, WATCH_INTERVAL_MS);
  const diskTimer = setInterval(diskTick, DISK_CHECK_INTERVAL_MS);
  tick();
  return {
    stop() {
      clearInterval(timer);
      clearInterval(diskTimer);
    },
    peakMb: () => peakMb,
  };
}

// ---- the agent ---------------------------------------------------------------------------------

function fillPlaceholders(argv, prompt, promptFile) {
  // One pass, so a prompt that itself contains "{prompt_file}" is not expanded again.
  return argv.map((a) => a.replace(/\{(prompt|prompt_file)\}/g, (_, name) => (name === "prompt" ? prompt : promptFile)));
}

function agentEnvironment(input, cwd) {
  return { PATH: DEFAULT_PATH, HOME: path.join(cwd, "home"), LANG: "C.UTF-8", ...input.agentEnv };
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

/** Reads bwrap's --info-fd document, which names the sandbox's first process by its host pid. */
function readSandboxPid(stream) {
  return new Promise((resolve) => {
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (d) => (text += d));
    stream.on("error", () => resolve(null));
    stream.on("close", () => {
      try {
        const pid = JSON.parse(text)["child-pid"];
        resolve(Number.isInteger(pid) ? pid : null);
      } catch {
        resolve(null);
      }
    });
  });
}

function runAgent(input, plan, cwd, argv) {
  const repo = path.join(cwd, "repo");
  const env = agentEnvironment(input, cwd);
  fs.mkdirSync(env.HOME, { recursive: true });
  let child;
  let watch = { stop() {}, peakMb: () => 0 };
  let sandboxPid = null;
  let limitHit = null;
  if (plan.kind === "bwrap") {
    if (plan.asRoot) {
      // The clone becomes nobody's; the work dir itself stays the worker's, passable but not writable.
      chownTree(repo, SANDBOX_UID, SANDBOX_UID);
      fs.chmodSync(cwd, 0o711);
    }
    child = spawn(plan.tools.bwrap, ["--args", "3", "--", ...innerCommand(plan, argv)], {
      cwd: repo,
      env: { PATH: DEFAULT_PATH },
      stdio: ["ignore", "pipe", "pipe", "pipe", "pipe"],
      detached: true,
    });
    const args = bwrapOptions(plan, cwd, env);
    child.stdio[3].on("error", () => {});
    child.stdio[3].end(Buffer.from(args.map((a) => a + "\0").join(""), "utf8"));
    void readSandboxPid(child.stdio[4]).then((pid) => {
      if (pid === null || child.exitCode !== null || child.signalCode !== null) return;
      sandboxPid = pid;
      watch = watchSandbox(pid, cwd, env.HOME, plan.limits, (limit, message) => {
        limitHit = { limit, message };
        emitLog("worker", message);
        killSandbox();
      });
    });
  } else {
    emitLog("worker", "WARNING: the agent runs WITHOUT a sandbox (LOCAL_SANDBOX=none): it can read and change everything this host's user can, and signal its processes");
    child = spawn(argv[0], argv.slice(1), { cwd: repo, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  }
  state.agentPid = child.pid ?? null;
  const killSandbox = () => {
    if (sandboxPid !== null) {
      try {
        process.kill(sandboxPid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    if (child.pid) killGroup(child.pid, "SIGKILL");
  };
  const outputs = Promise.all([pipeLines(child.stdout, "stdout"), pipeLines(child.stderr, "stderr")]);

  return new Promise((resolve) => {
    let timedOut = false;
    let killTimer;
    let settled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) killGroup(child.pid, "SIGTERM");
      killTimer = setTimeout(killSandbox, KILL_GRACE_MS);
    }, input.agentTimeoutSeconds * 1000);
    const finish = async (exitCode, signal, spawnError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      watch.stop();
      // Whatever the agent left behind in its group (without bwrap's PID namespace) goes too.
      killSandbox();
      state.agentPid = null;
      // A grandchild that escaped the group could hold the pipes open; do not wait for it forever.
      await Promise.race([outputs, new Promise((r) => setTimeout(r, 1000))]);
      child.stdout.destroy();
      child.stderr.destroy();
      // The sandbox's processes died with its PID namespace: the work dir is the worker's again.
      if (plan.kind === "bwrap" && plan.asRoot) chownTree(repo, process.getuid(), process.getgid());
      resolve({ exitCode, signal, timedOut, spawnError, limitHit, peakMb: watch.peakMb() });
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
  // Refuse before the token is used at all when the agent could not be sandboxed as asked.
  const planned = planSandbox(input, cwd);
  if (!planned.ok) {
    emitLog("worker", planned.message);
    return { outcome: "error", message: planned.message };
  }
  const plan = planned.plan;
  state.privateDir = makePrivateDir();
  emitLog("worker", `private dir ${state.privateDir} (mode 0700)`);

  // clone
  emitStep("clone", "started");
  fs.rmSync(repo, { recursive: true, force: true });
  if (input.token) armCredentials(input.token);
  let trustedConfig;
  try {
    await gitOk([...SAFE_GIT, "clone", "--quiet", "--single-branch", "--branch", input.baseBranch, "--", input.cloneUrl, repo], cwd, "clone");
    state.baseSha = await gitOk([...SAFE_GIT, "rev-parse", "HEAD"], repo, "rev-parse");
    trustedConfig = fs.readFileSync(path.join(repo, ".git", "config"), "utf8");
    if (input.steering) {
      await gitOk([...SAFE_GIT, "fetch", "--quiet", "--depth=1", "--", input.steering.fromUrl ?? input.cloneUrl, `refs/heads/${input.steering.fromBranch}`], repo, "fetch");
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
  const agent = await runAgent(input, plan, cwd, argv);
  let limitHit = agent.limitHit;
  const agentOk = !agent.timedOut && !agent.spawnError && !limitHit && agent.exitCode === 0;
  const agentExitCode = agent.exitCode ?? null;
  let agentSummary;
  if (limitHit) agentSummary = limitHit.message;
  else if (agent.timedOut) agentSummary = `the agent ran past ${input.agentTimeoutSeconds}s and was stopped`;
  else if (agent.spawnError) agentSummary = `the agent could not start: ${agent.spawnError.message}`;
  else if (agent.exitCode === 0) agentSummary = "the agent finished";
  else agentSummary = `the agent exited with ${agent.exitCode === null ? `signal ${agent.signal}` : `code ${agent.exitCode}`}`;
  // SIGXFSZ (25) is the file-size limit; bwrap passes a signal death on as 128 + its number.
  if (plan.kind === "bwrap" && (agent.signal === "SIGXFSZ" || agent.exitCode === 153)) agentSummary += ` (it wrote a file larger than its disk limit of ${plan.limits.maxDiskMb} MB)`;
  emitStep("agent", agentOk ? "finished" : "failed", agentOk ? "exit 0" : agentSummary);
  const failedOutcome = agent.timedOut && !limitHit ? "timed_out" : "agent_failed";
  const limitField = () => (limitHit ? { limit: limitHit.limit } : {});

  // The work dir as the agent left it, measured before anything of it is committed.
  if (plan.kind === "bwrap" && limitHit?.limit !== "disk") {
    const kb = await diskUsageKb(cwd);
    if (kb !== null && kb > plan.limits.maxDiskMb * 1024) {
      limitHit = { limit: "disk", message: `the agent's work dir holds ${megabytes(kb)} MB, over its limit of ${plan.limits.maxDiskMb} MB; nothing was pushed` };
      emitLog("worker", limitHit.message);
    }
  }
  if (limitHit?.limit === "disk") {
    emitStep("commit", "skipped", limitHit.message);
    emitStep("push", "skipped", limitHit.message);
    return { outcome: "agent_failed", limit: "disk", message: limitHit.message, baseSha, agentExitCode };
  }

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
        : { outcome: failedOutcome, message: `${agentSummary} and changed nothing`, baseSha, agentExitCode, filesChanged: 0, ...limitField() };
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

  if (input.noSecrets) {
    // No token, no push: the change leaves as a patch the controller shows to the maintainers.
    let patch = await gitOk([...SAFE_GIT, "format-patch", "--stdout", `${baseSha}..${headSha}`], repo, "format-patch");
    if (patch.length > MAX_PATCH_CHARS) patch = `${patch.slice(0, MAX_PATCH_CHARS)}\n[… patch cut at ${MAX_PATCH_CHARS} characters]\n`;
    emitStep("push", "skipped", "no token in this run: the change is returned as a patch");
    return {
      outcome: agentOk ? "patch" : failedOutcome,
      message: agentOk ? `returned a patch of ${filesChanged} changed file${filesChanged === 1 ? "" : "s"}` : `${agentSummary}; its partial work is in the patch`,
      patch,
      headSha,
      baseSha,
      filesChanged,
      agentExitCode,
      ...limitField(),
    };
  }

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
    ...limitField(),
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
  secrets = token ? [token, encodeURIComponent(token), Buffer.from(`x-access-token:${token}`).toString("base64")] : [];
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
