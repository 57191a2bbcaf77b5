// The watchdog over one sandbox, from outside: its tasks and memory every half second, its work
// tree's disk every few seconds; it stops the agent with a clear reason when one is over.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { MB } from "./sandbox-plan.mjs";
import { DEFAULT_PATH } from "./processes.mjs";

const WATCH_INTERVAL_MS = 500;
const DISK_CHECK_INTERVAL_MS = 5000;

/** Kilobytes the work dir takes on disk (blocks, as du counts them), or null if du fails outright. */
export function diskUsageKb(dir) {
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

export function megabytes(kb) {
  return (kb / 1024).toFixed(1).replace(/\.0$/, "");
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
 * its work dir on disk. Calls `onLimit` once, with the reason, when a limit is passed; `who` (the
 * agent, a setup step) starts the reason.
 */
export function watchSandbox(sandboxPid, cwd, home, limits, onLimit, who = "the agent") {
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
    if (usedMb > limits.memoryMb) fire("memory", `${who} held ${usedMb} MB of memory, over its limit of ${limits.memoryMb} MB, and was stopped`);
    // At the limit every fork fails; two looks in a row tell a fork bomb from a busy moment.
    atProcessLimit = tasks >= limits.maxProcesses - 1 ? atProcessLimit + 1 : 0;
    if (atProcessLimit >= 2)
      fire("processes", `${who} reached its limit of ${limits.maxProcesses} processes and threads (a fork bomb, or too many tools at once) and was stopped`);
  };
  let diskBusy = false;
  const diskTick = () => {
    if (diskBusy || fired) return;
    diskBusy = true;
    void diskUsageKb(cwd).then((kb) => {
      diskBusy = false;
      if (kb !== null && kb > limits.maxDiskMb * 1024)
        fire("disk", `${who}'s work dir grew to ${megabytes(kb)} MB, over its limit of ${limits.maxDiskMb} MB; it was stopped and nothing was pushed`);
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
