// The setup step: the repository's `setup:` commands, one after the other, each in the agent's
// sandbox (same user, same limits, the work tree read-write) but with the host's network, whatever
// the agent's will be: installing dependencies is what they are for. They get no secret (not the
// agent's environment, not the prompt) and the dependency cache read-write. The first to fail ends
// the job: the agent does not run.
import { DEFAULT_PATH } from "./processes.mjs";
import { emitLog } from "./output.mjs";
import { runSandboxed } from "./sandboxed-run.mjs";

/** A command as the status comment shows it: its first line, short, with no backtick to break the code span. */
export function shortCommand(command) {
  const lines = command.trim().split("\n");
  const first = lines[0].replace(/`/g, "'");
  const cut = first.length > 60 ? `${first.slice(0, 59)}…` : first;
  return lines.length > 1 && cut === first ? `${cut} …` : cut;
}

function seconds(s) {
  return s >= 120 && s % 60 === 0 ? `${s / 60} min` : `${Math.round(s)} s`;
}

/**
 * Runs `input.setup.commands` within `timeoutSeconds` in all. `cache` is the opened dependency
 * cache or null. Returns `{ ok: true }` or `{ ok: false, message }` naming the step and why.
 */
export async function runSetup(input, plan, layout, cache, timeoutSeconds) {
  const commands = input.setup.commands;
  const deadline = Date.now() + timeoutSeconds * 1000;
  // The agent's network restriction (none, allowlist) takes effect after setup, for the agent.
  const setupPlan = plan.kind === "bwrap" ? { ...plan, shareNet: true, egress: null } : plan;
  // No prompt and no proxy socket: setup needs neither.
  const setupLayout = { repo: layout.repo, objects: layout.objects, home: layout.home, ...(cache ? { cache: { dir: cache.dir, writable: true } } : {}) };
  const env = { PATH: DEFAULT_PATH, HOME: layout.home, LANG: "C.UTF-8", ...(cache?.env ?? {}) };
  for (let i = 0; i < commands.length; i++) {
    const name = `setup step ${i + 1}${commands.length > 1 ? ` of ${commands.length}` : ""} (\`${shortCommand(commands[i])}\`)`;
    const left = (deadline - Date.now()) / 1000;
    if (left <= 0) return { ok: false, message: `${name} did not start: setup ran past its limit of ${seconds(timeoutSeconds)}; the agent did not run` };
    emitLog("worker", `${name} started`);
    const started = Date.now();
    const r = await runSandboxed({
      plan: setupPlan,
      layout: setupLayout,
      argv: ["/bin/sh", "-e", "-c", commands[i]],
      env,
      timeoutSeconds: left,
      streams: { out: "setup", err: "setup" },
      who: `setup step ${i + 1}`,
    });
    const took = ((Date.now() - started) / 1000).toFixed(1);
    if (r.limitHit) return { ok: false, message: `${name}: ${r.limitHit.message}; the agent did not run` };
    if (r.timedOut) return { ok: false, message: `${name} ran past setup's limit of ${seconds(timeoutSeconds)} and was stopped; the agent did not run` };
    if (r.spawnError) return { ok: false, message: `${name} could not start: ${r.spawnError.message}; the agent did not run` };
    if (r.exitCode !== 0) {
      // bwrap passes a signal death on as 128 + its number.
      const how = r.exitCode === null ? `was killed by ${r.signal}` : `exited with code ${r.exitCode}`;
      return { ok: false, message: `${name} ${how}; the agent did not run` };
    }
    emitLog("worker", `${name} finished in ${took} s`);
  }
  return { ok: true };
}
