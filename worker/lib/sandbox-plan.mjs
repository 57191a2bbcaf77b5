// How the agent is sandboxed: the plan (decided before anything is cloned, so a host that cannot
// sandbox refuses the job before the token is used) and the bubblewrap command line that carries it.
//
// bubblewrap gives the agent its own PID, IPC and UTS namespaces (and network, with `network:
// none`), the system folders read-only, its work tree read-write, the prompt read-only, the objects
// of the worker's git directory read-only (its own .git borrows them), a tmpfs /tmp and $HOME, and
// nothing else of the host's file tree: not the job's folder, not the worker's git directory, not
// the worker's private folder. When the worker runs as root the agent runs as nobody (uid 65534): in
// a mount namespace a uid-0 agent would still own, and so read, every root-owned file it can see.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { DEFAULT_LIMITS, LIMIT_KEYS } from "./input.mjs";
import { findTool } from "./processes.mjs";

/** The agent's uid and gid when the worker runs as root: nobody, which owns no file on a normal host. */
export const SANDBOX_UID = 65534;
/** Where the job's net/ folder (the proxy's socket, the forwarder) appears inside the sandbox. */
export const SANDBOX_NET_DIR = "/run/agent-work-net";
/** Where the repository's dependency cache appears inside the sandbox (lib/dependency-cache.mjs). */
export const SANDBOX_CACHE_DIR = "/run/agent-work-cache";
/** Host folders the sandbox mounts read-only at the same path; tools run inside must live in one. */
const SYSTEM_DIRS = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"];
export const MB = 1024 * 1024;
const INSTALL_BWRAP = "install it (Debian/Ubuntu: apt-get install -y bubblewrap; Fedora/RHEL: dnf install -y bubblewrap)";

export function under(dir, p) {
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

/**
 * Decides, before anything is cloned, how the agent will be sandboxed here, or why it cannot be:
 * a host without bubblewrap refuses the job rather than run the agent unsandboxed.
 */
export function planSandbox(input, cwd) {
  const sb = input.sandbox;
  if (sb.kind !== "bwrap") return { ok: true, plan: { kind: "none" } };
  const asRoot = process.getuid?.() === 0;
  // As root, bwrap builds the sandbox with the worker's own CAP_SYS_ADMIN (no user namespace, so
  // the agent can be dropped to nobody); root in a container usually lacks it.
  if (asRoot && !hasCapability(CAP_SYS_ADMIN)) {
    return {
      ok: false,
      message:
        "refused to run the agent: the worker runs as root without CAP_SYS_ADMIN (in a container?), so it cannot build the sandbox that runs the agent as nobody; run the controller (or log in to this host) as an unprivileged user instead",
    };
  }
  const tools = {};
  for (const name of ["bwrap", "prlimit", ...(asRoot ? ["setpriv", "unshare"] : [])]) tools[name] = findTool(name);
  if (!tools.bwrap) {
    return {
      ok: false,
      message: `refused to run the agent: bubblewrap (bwrap) is not installed on this host; ${INSTALL_BWRAP}, or start the controller with LOCAL_SANDBOX=none to run agents unsandboxed`,
    };
  }
  // --perms on --tmpfs and --dir came with 0.5, --size with 0.7 (Ubuntu 22.04 has 0.6: no sizes).
  const version = /bubblewrap (\d+)\.(\d+)/.exec(spawnSync(tools.bwrap, ["--version"], { encoding: "utf8" }).stdout ?? "");
  const [major, minor] = version ? [Number(version[1]), Number(version[2])] : [0, 0];
  if (major === 0 && minor < 5)
    return {
      ok: false,
      message: `refused to run the agent: ${tools.bwrap} is ${version ? `bubblewrap ${major}.${minor}` : "not a bubblewrap this worker understands"}; the sandbox needs 0.5 or later`,
    };
  const tmpfsSize = major > 0 || minor >= 7;
  const missing = Object.keys(tools).filter((name) => !tools[name]);
  if (missing.length > 0) {
    return {
      ok: false,
      message: `refused to run the agent: ${missing.join(", ")} not found on this host; install util-linux (apt-get install -y util-linux), which the sandbox's limits need`,
    };
  }
  for (const name of ["prlimit", "setpriv", "unshare"]) {
    const p = tools[name] && fs.realpathSync(tools[name]);
    if (p && !SYSTEM_DIRS.some((d) => under(d, p)))
      return { ok: false, message: `refused to run the agent: ${name} is at ${p}, outside the system folders the sandbox mounts (${SYSTEM_DIRS.join(", ")})` };
    if (p) tools[name] = p;
  }
  // A read-only bind that holds the work dir would show the agent its neighbours: other jobs, the
  // controller's data folder and .env.
  const exposing = sb.roBinds.find((p) => under(p, cwd));
  if (exposing)
    return {
      ok: false,
      message: `refused to run the agent: the read-only path ${exposing} (SANDBOX_RO_BINDS) holds the job's work dir, and with it other jobs and the controller's data; name narrower folders`,
    };
  // Under an allow-list the agent's only way out is a forwarder in front of it, run by node inside
  // the sandbox: node must be in the system folders the sandbox mounts.
  let egress = null;
  if (sb.egress) {
    const node = [process.execPath, findTool("node")].find((p) => p && SYSTEM_DIRS.some((d) => under(d, fs.realpathSync(p))));
    if (!node)
      return {
        ok: false,
        message: `refused to run the agent: network: allowlist needs node inside the sandbox, and ${process.execPath} is outside the system folders it mounts (${SYSTEM_DIRS.join(", ")})`,
      };
    egress = { ...sb.egress, node };
  }
  const limits = { ...DEFAULT_LIMITS };
  for (const k of LIMIT_KEYS) if (sb.limits?.[k] !== undefined) limits[k] = sb.limits[k];
  return { ok: true, plan: { kind: "bwrap", asRoot, tools, limits, tmpfsSize, shareNet: sb.shareNet && !egress, roBinds: sb.roBinds, egress } };
}

/** Every ancestor of `p` below `/`, outermost first. */
function ancestors(p) {
  const out = [];
  for (let d = path.dirname(p); d !== "/" && d !== "."; d = path.dirname(d)) out.unshift(d);
  return out;
}

/**
 * bwrap options; sent through `--args 3` so the agent's environment never sits in an argv.
 * `layout` names the paths of the job: `repo` (the work tree, read-write), `prompt` (read-only;
 * absent for setup steps), `objects` (the worker's git objects, read-only: the agent's own .git
 * borrows them as alternates), `home` (a tmpfs), and, when the job has one, `cache`: the
 * repository's dependency cache `{ dir, writable }`, at SANDBOX_CACHE_DIR.
 */
export function bwrapOptions(plan, layout, env) {
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
  const optional = [...(layout.prompt ? [layout.prompt] : []), ...(layout.net ? [SANDBOX_NET_DIR] : []), ...(layout.cache ? [SANDBOX_CACHE_DIR] : [])];
  for (const target of [layout.repo, layout.objects, layout.home, ...optional, ...plan.roBinds]) {
    for (const dir of ancestors(target)) {
      if (made.has(dir) || SYSTEM_DIRS.some((d) => under(d, dir)) || under("/proc", dir) || under("/dev", dir)) continue;
      made.add(dir);
      opts.push("--perms", "0755", "--dir", dir);
    }
  }
  opts.push("--bind", layout.repo, layout.repo);
  if (layout.prompt) opts.push("--ro-bind", layout.prompt, layout.prompt);
  opts.push("--ro-bind", layout.objects, layout.objects);
  // This repository's cache and no other's: the folder of its own key, never the cache root.
  if (layout.cache) opts.push(layout.cache.writable ? "--bind" : "--ro-bind", layout.cache.dir, SANDBOX_CACHE_DIR);
  // The proxy's socket and the forwarder: the sandbox's only way out under an allow-list. At a short
  // fixed path: a Unix socket's path holds at most 107 bytes, and a job folder may lie deeper.
  if (layout.net) opts.push("--ro-bind", layout.net, SANDBOX_NET_DIR);
  // $HOME is memory, not the work dir: what the agent keeps there dies with the sandbox.
  opts.push("--perms", plan.asRoot ? "0777" : "0700", ...size, "--tmpfs", env.HOME);
  for (const p of plan.roBinds) opts.push("--ro-bind", p, p);
  // The skeleton bwrap built (the folders on the way to the binds) is not somewhere to write.
  opts.push("--remount-ro", "/");
  opts.push("--clearenv");
  for (const [k, v] of Object.entries(env)) opts.push("--setenv", k, v);
  opts.push("--chdir", layout.repo, "--info-fd", "4");
  return opts;
}

/** What runs inside bwrap before the agent: drop to nobody (as root), then the per-process limits. */
export function innerCommand(plan, argv) {
  const { memoryMb, maxProcesses, maxDiskMb } = plan.limits;
  const limit = (name, value) => `--${name}=${value}:${value}`;
  const prlimit = [plan.tools.prlimit, limit("nproc", maxProcesses), limit("data", memoryMb * MB), limit("fsize", maxDiskMb * MB), limit("core", 0), "--"];
  if (!plan.asRoot) return [...prlimit, ...argv];
  // A user namespace of its own makes the process count the sandbox's alone: without one, every
  // process of nobody on the host would count against it.
  const drop = [plan.tools.setpriv, `--reuid=${SANDBOX_UID}`, `--regid=${SANDBOX_UID}`, "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--"];
  return [...drop, plan.tools.unshare, "--user", "--", ...prlimit, ...argv];
}
