// The repository's dependency cache: npm's, pip's, cargo's… folders, kept between the jobs of one
// repository on one host, mounted into the sandbox for setup and agent, bounded in size.
//
// Beside the job folders (every backend but k8s runs the worker in <root>/<job id>/work):
//   <root>/.dependency-cache/            0700, the worker's
//     <key>/                             0700, the worker's; one per repository (owner+repo-id)
//       data/                            the cache itself: the only part any sandbox sees, and
//                                        only a job of this repository (nobody's when the worker is root)
//       lock                             flock(1)ed while a job uses data/; never removed
//       last-used                        its mtime: when a job last used data/
//
// What a sandbox leaves in data/ is hostile input, as the work tree is: it is measured and removed
// walking with lstat, never following a link, and only while this worker holds the folder's lock,
// so no sandbox can swap a folder for a link under the walk. The sandbox sees data/ alone, at
// SANDBOX_CACHE_DIR: the root, other repositories' folders and the lock are not in it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CACHE_KEY } from "./input.mjs";
import { emitLog } from "./output.mjs";
import { children, DEFAULT_PATH, findTool } from "./processes.mjs";
import { MB, SANDBOX_CACHE_DIR, SANDBOX_UID } from "./sandbox-plan.mjs";
import { chownTree } from "./work-tree.mjs";

export const CACHE_FOLDER = ".dependency-cache";
/** A cache with more entries than this is not walked to the end: it counts as over any cap. */
const MAX_ENTRIES = 2_000_000;
const LOCK_BUSY = 75;

/**
 * Where the usual tools keep their caches, all under `base` (SANDBOX_CACHE_DIR in the sandbox).
 * The agent's own variables (AGENT_ENV_PASSTHROUGH) win over these.
 */
export function cacheEnvironment(base) {
  return {
    XDG_CACHE_HOME: `${base}/xdg`,
    npm_config_cache: `${base}/npm`,
    YARN_CACHE_FOLDER: `${base}/yarn`,
    PIP_CACHE_DIR: `${base}/pip`,
    UV_CACHE_DIR: `${base}/uv`,
    CARGO_HOME: `${base}/cargo`,
    GOMODCACHE: `${base}/go/mod`,
    GOCACHE: `${base}/go/build`,
    GRADLE_USER_HOME: `${base}/gradle`,
  };
}

/**
 * Takes `lockFile`'s flock without waiting, held by a flock(1) process until `release()` (or
 * until this worker dies: its pipe closes, and the kernel drops the lock with the process).
 * Resolves to `{ ok: true, release }`, `{ ok: false, busy: true }` or `{ ok: false, why }`.
 */
export function tryLock(lockFile) {
  const flock = findTool("flock");
  if (!flock) return Promise.resolve({ ok: false, why: "flock (util-linux) is not installed" });
  return new Promise((resolve) => {
    const child = spawn(
      flock,
      ["--exclusive", "--nonblock", "--close", "--conflict-exit-code", String(LOCK_BUSY), lockFile, "/bin/sh", "-c", "echo locked; exec cat"],
      {
        stdio: ["pipe", "pipe", "ignore"],
        env: { PATH: DEFAULT_PATH },
      },
    );
    children.add(child);
    const exited = new Promise((r) => child.on("close", r));
    child.on("close", () => children.delete(child));
    child.stdin.on("error", () => {});
    let held = false;
    child.stdout.setEncoding("utf8").on("data", (d) => {
      if (held || !d.includes("locked")) return;
      held = true;
      resolve({
        ok: true,
        release: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
    child.on("error", (err) => resolve({ ok: false, why: `flock failed: ${err.message}` }));
    child.on("close", (code) => {
      if (held) return;
      resolve(code === LOCK_BUSY ? { ok: false, busy: true } : { ok: false, why: `flock exited with ${code}` });
    });
  });
}

/** A real folder at `p` (made 0700 when missing), never a link: false when something else is there. */
function ensureFolder(p) {
  try {
    fs.mkdirSync(p, { mode: 0o700 });
  } catch (err) {
    if (err.code !== "EEXIST") throw err;
  }
  const st = fs.lstatSync(p);
  return st.isDirectory() && !st.isSymbolicLink();
}

function touch(file) {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  try {
    const now = new Date();
    fs.futimesSync(fd, now, now);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Bytes a tree takes on disk (blocks, as du counts them), walked with lstat: a link counts as the
 * link, and what it points at is never looked at. A folder the sandbox made unreadable is the
 * worker's to open. `null` past MAX_ENTRIES.
 */
export function measureTree(root) {
  let bytes = 0;
  let entries = 0;
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop();
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (++entries > MAX_ENTRIES) return null;
    bytes += st.blocks * 512;
    if (!st.isDirectory()) continue;
    let names;
    try {
      names = fs.readdirSync(p);
    } catch {
      try {
        fs.chmodSync(p, 0o700);
        names = fs.readdirSync(p);
      } catch {
        continue;
      }
    }
    for (const name of names) stack.push(path.join(p, name));
  }
  return bytes;
}

/** Removes a tree without following a link in it; folders the sandbox made unwritable are opened first. */
export function removeTree(root) {
  try {
    fs.rmSync(root, { recursive: true, force: true });
    return;
  } catch {
    // a folder without write or search permission for the worker: open them up, then again
  }
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop();
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st?.isDirectory()) continue;
    try {
      fs.chmodSync(p, 0o700);
      for (const name of fs.readdirSync(p)) stack.push(path.join(p, name));
    } catch {
      // left as it is; rmSync says what it could not remove
    }
  }
  fs.rmSync(root, { recursive: true, force: true });
}

function mb(bytes) {
  return (bytes / MB).toFixed(1).replace(/\.0$/, "");
}

/**
 * After a job: while the caches on this host hold more than `maxMb`, the one used longest ago
 * loses its data/ folder, under its lock (a folder another job holds is skipped; this job's own,
 * whose lock it holds, goes last, and goes too if it alone is over the cap).
 */
export async function evictCaches(root, maxMb, own) {
  const found = [];
  for (const key of fs.readdirSync(root)) {
    if (!CACHE_KEY.test(key)) continue;
    const home = path.join(root, key);
    const st = fs.lstatSync(home, { throwIfNoEntry: false });
    if (!st?.isDirectory()) continue;
    const data = path.join(home, "data");
    const dataSt = fs.lstatSync(data, { throwIfNoEntry: false });
    if (!dataSt?.isDirectory()) continue;
    const used = fs.lstatSync(path.join(home, "last-used"), { throwIfNoEntry: false })?.mtimeMs ?? st.mtimeMs;
    const bytes = measureTree(data);
    found.push({ key, home, data, used, bytes: bytes ?? Number.MAX_SAFE_INTEGER });
  }
  const cap = maxMb * MB;
  let total = found.reduce((sum, c) => sum + c.bytes, 0);
  const ownEntry = found.find((c) => c.key === own.key);
  emitLog(
    "worker",
    `dependency cache: ${ownEntry ? mb(ownEntry.bytes) : 0} MB for this repository; ${found.length} on this host hold ${mb(total)} MB of the ${maxMb} MB cap`,
  );
  found.sort((a, b) => (a.key === own.key) - (b.key === own.key) || a.used - b.used);
  for (const c of found) {
    if (total <= cap) break;
    let lock = null;
    if (c.key !== own.key) {
      lock = await tryLock(path.join(c.home, "lock"));
      if (!lock.ok) continue;
    }
    try {
      removeTree(c.data);
      total -= c.bytes;
      emitLog(
        "worker",
        `dependency cache: evicted ${c.key === own.key ? "this repository's" : "another repository's"} cache (${mb(c.bytes)} MB, last used ${new Date(c.used).toISOString()}) to stay under ${maxMb} MB`,
      );
    } catch (err) {
      emitLog("worker", `dependency cache: could not evict a cache: ${err.message}`);
    } finally {
      await lock?.release();
    }
  }
}

/**
 * Opens this repository's cache for the job: its folder locked for the job, given to the sandbox's
 * user, and the environment that points the usual tools into it. Null (with a log line saying why)
 * when the job goes without: another job of the repository holds it, or the host cannot keep one.
 * `close()` marks it used, evicts over the cap, and unlocks.
 */
export async function openDependencyCache(spec, cwd, plan) {
  const none = (why) => {
    emitLog("worker", `dependency cache: none for this job (${why})`);
    return null;
  };
  if (!CACHE_KEY.test(spec.key)) return none("the repository's key is not a folder name");
  // Only in a job folder laid out as the backends make them, never in a folder of unknown neighbours.
  if (path.basename(cwd) !== "work") return none("the worker does not run in a job folder's work/");
  const root = path.resolve(cwd, "..", "..", CACHE_FOLDER);
  const home = path.join(root, spec.key);
  const data = path.join(home, "data");
  let lock;
  try {
    if (!ensureFolder(root) || !ensureFolder(home)) return none(`${root} holds something other than folders`);
    lock = await tryLock(path.join(home, "lock"));
    if (!lock.ok) return none(lock.busy ? "another job of this repository on this host is using it" : lock.why);
    if (!ensureFolder(data)) {
      await lock.release();
      return none(`${data} is not a folder`);
    }
    touch(path.join(home, "last-used"));
    if (plan.kind === "bwrap" && plan.asRoot) {
      // The sandbox runs as nobody. A file a run as root left (LOCAL_SANDBOX=none) is handed over
      // too, without following a link, set-id bits cleared.
      chownTree(data, SANDBOX_UID, SANDBOX_UID);
      fs.chmodSync(data, 0o700);
    }
  } catch (err) {
    await lock?.release?.();
    return none(err.message);
  }
  const before = measureTree(data);
  emitLog("worker", `dependency cache: ${before === null ? "more than the cap" : `${mb(before)} MB`} kept from earlier jobs of this repository on this host`);
  let closed = false;
  return {
    dir: data,
    env: cacheEnvironment(plan.kind === "bwrap" ? SANDBOX_CACHE_DIR : data),
    async close() {
      if (closed) return;
      closed = true;
      try {
        touch(path.join(home, "last-used"));
        await evictCaches(root, spec.maxMb, { key: spec.key });
      } catch (err) {
        emitLog("worker", `dependency cache: could not measure or evict: ${err.message}`);
      } finally {
        await lock.release();
      }
    },
  };
}
