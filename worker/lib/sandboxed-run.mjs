// One command in the sandbox (or, as the explicit opt-out, without one): its output piped into the
// protocol as log lines, its time limit, and the watchdog. The agent runs through here, and so
// does each setup step before it.
import { spawn } from "node:child_process";
import { Buffer } from "node:buffer";
import fs from "node:fs";
import { emitLog } from "./output.mjs";
import { DEFAULT_PATH, killGroup, runtime } from "./processes.mjs";
import { bwrapOptions, innerCommand, SANDBOX_UID } from "./sandbox-plan.mjs";
import { watchSandbox } from "./watchdog.mjs";
import { chownTree } from "./work-tree.mjs";

const KILL_GRACE_MS = 5000;

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

/**
 * Runs `argv` in the sandbox `plan` describes, with `env` and a limit of `timeoutSeconds`;
 * resolves when it and everything it started are gone. `layout` is the job's paths (see
 * bwrapOptions). `streams` names the log streams of its stdout and stderr; `who` ("the agent",
 * "setup step 1") starts the watchdog's messages; `stdinFile`, when set, is its standard input.
 */
export function runSandboxed({ plan, layout, argv, env, timeoutSeconds, streams = { out: "stdout", err: "stderr" }, who = "the agent", stdinFile }) {
  const { repo } = layout;
  fs.mkdirSync(env.HOME, { recursive: true });
  const stdin = stdinFile ? fs.openSync(stdinFile, "r") : "ignore";
  let child;
  let watch = { stop() {}, peakMb: () => 0 };
  let sandboxPid = null;
  let limitHit = null;
  if (plan.kind === "bwrap") {
    if (plan.asRoot) {
      // The work tree becomes nobody's; everything else of the job's folder stays the worker's, and
      // the sandbox does not even show it.
      chownTree(repo, SANDBOX_UID, SANDBOX_UID);
    }
    child = spawn(plan.tools.bwrap, ["--args", "3", "--", ...innerCommand(plan, argv)], {
      cwd: repo,
      env: { PATH: DEFAULT_PATH },
      stdio: [stdin, "pipe", "pipe", "pipe", "pipe"],
      detached: true,
    });
    const args = bwrapOptions(plan, layout, env);
    child.stdio[3].on("error", () => {});
    child.stdio[3].end(Buffer.from(args.map((a) => a + "\0").join(""), "utf8"));
    void readSandboxPid(child.stdio[4]).then((pid) => {
      if (pid === null || child.exitCode !== null || child.signalCode !== null) return;
      sandboxPid = pid;
      watch = watchSandbox(
        pid,
        repo,
        env.HOME,
        plan.limits,
        (limit, message) => {
          limitHit = { limit, message };
          emitLog("worker", message);
          killSandbox();
        },
        who,
      );
    });
  } else {
    emitLog(
      "worker",
      `WARNING: ${who} runs WITHOUT a sandbox (LOCAL_SANDBOX=none): it can read and change everything this host's user can, and signal its processes`,
    );
    child = spawn(argv[0], argv.slice(1), { cwd: repo, env, stdio: [stdin, "pipe", "pipe"], detached: true });
  }
  // The child holds its own copy of the descriptor now.
  if (typeof stdin === "number") fs.closeSync(stdin);
  runtime.agentPid = child.pid ?? null;
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
  const outputs = Promise.all([pipeLines(child.stdout, streams.out), pipeLines(child.stderr, streams.err)]);

  return new Promise((resolve, reject) => {
    let timedOut = false;
    let killTimer;
    let settled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) killGroup(child.pid, "SIGTERM");
      killTimer = setTimeout(killSandbox, KILL_GRACE_MS);
    }, timeoutSeconds * 1000);
    const finish = async (exitCode, signal, spawnError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      watch.stop();
      // Whatever it left behind in its group (without bwrap's PID namespace) goes too.
      killSandbox();
      runtime.agentPid = null;
      // A grandchild that escaped the group could hold the pipes open; do not wait for it forever.
      await Promise.race([outputs, new Promise((r) => setTimeout(r, 1000))]);
      child.stdout.destroy();
      child.stderr.destroy();
      // The sandbox's processes died with its PID namespace: the work dir is the worker's again.
      if (plan.kind === "bwrap" && plan.asRoot) chownTree(repo, process.getuid(), process.getgid());
      resolve({ exitCode, signal, timedOut, spawnError, limitHit, peakMb: watch.peakMb() });
    };
    // "error" without "exit" is a failed spawn (ENOENT, EACCES).
    // finish() is async: a failure in it (the chown, say) fails the run instead of going unheard.
    child.on("error", (err) => {
      finish(null, null, err).catch(reject);
    });
    child.on("exit", (code, signal) => {
      finish(code, signal, undefined).catch(reject);
    });
  });
}
