// The agent step: the agent's command in its sandbox (or, as the explicit opt-out, without one),
// its output piped into the protocol as log lines, its time limit, and the watchdog.
import { spawn } from "node:child_process";
import { Buffer } from "node:buffer";
import fs from "node:fs";
import { emitLog } from "./output.mjs";
import { DEFAULT_PATH, killGroup, runtime } from "./processes.mjs";
import { bwrapOptions, innerCommand, SANDBOX_UID } from "./sandbox-plan.mjs";
import { watchSandbox } from "./watchdog.mjs";
import { chownTree } from "./work-tree.mjs";

const KILL_GRACE_MS = 5000;

export function fillPlaceholders(argv, prompt, promptFile) {
  // One pass, so a prompt that itself contains "{prompt_file}" is not expanded again.
  return argv.map((a) => a.replace(/\{(prompt|prompt_file)\}/g, (_, name) => (name === "prompt" ? prompt : promptFile)));
}

function agentEnvironment(input, layout) {
  return { PATH: DEFAULT_PATH, HOME: layout.home, LANG: "C.UTF-8", ...input.agentEnv };
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

/**
 * Runs the agent in its sandbox with the job's time limit; resolves when it and everything it
 * started are gone. `layout` is the job's paths (see bwrapOptions).
 */
export function runAgent(input, plan, layout, argv) {
  const { repo } = layout;
  const env = agentEnvironment(input, layout);
  fs.mkdirSync(env.HOME, { recursive: true });
  // A CLI that reads its prompt from stdin gets the prompt file there: no argv limit (128 KiB an
  // argument) for a long discussion, and the file is the one the sandbox mounts read-only anyway.
  const stdin = input.promptOnStdin ? fs.openSync(layout.prompt, "r") : "ignore";
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
      watch = watchSandbox(pid, repo, env.HOME, plan.limits, (limit, message) => {
        limitHit = { limit, message };
        emitLog("worker", message);
        killSandbox();
      });
    });
  } else {
    emitLog("worker", "WARNING: the agent runs WITHOUT a sandbox (LOCAL_SANDBOX=none): it can read and change everything this host's user can, and signal its processes");
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
  const outputs = Promise.all([pipeLines(child.stdout, "stdout"), pipeLines(child.stderr, "stderr")]);

  return new Promise((resolve, reject) => {
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

