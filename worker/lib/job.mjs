// One job on the worker, step by step: clone, setup, agent, commit, push (or, with no secret, a patch).
//
// The job's folder (the worker's cwd):
//   repo/        the work tree: the only folder of the job the sandbox mounts, read-write
//   repo/.git    the agent's own repository (made here, removed unread before the commit)
//   git/         the worker's git directory: never mounted in the sandbox (its objects read-only)
//   prompt.md    the prompt, mounted read-only
//   home/        the agent's $HOME: a tmpfs inside the sandbox
//   net/         under `network: allowlist`: the egress proxy's socket and the forwarder, read-only
// and, beside the job folders, the repository's dependency cache (lib/dependency-cache.mjs).
import fs from "node:fs";
import path from "node:path";
import { runAgent, fillPlaceholders } from "./agent.mjs";
import { openDependencyCache } from "./dependency-cache.mjs";
import { FORWARDER_SOURCE, startEgressProxy } from "./egress-proxy.mjs";
import { armCredentials, createGit, disarmCredentials, prepareAgentRepository, pushMovingBranch, remoteHasBranch, shareObjectsReadOnly } from "./git.mjs";
import { DEFAULT_LIMITS } from "./input.mjs";
import { emitLog, emitStep } from "./output.mjs";
import { makePrivateDir, runtime } from "./processes.mjs";
import { MB, planSandbox, SANDBOX_NET_DIR } from "./sandbox-plan.mjs";
import { diskUsageKb, megabytes } from "./watchdog.mjs";
import { prepareTreeForCommit } from "./work-tree.mjs";
import { runSetup } from "./setup.mjs";

/** Where an `ask` run's agent writes its answer (src/worker/protocol.ts ANSWER_FILE), and how much of it is read. */
const ANSWER_FILE = ".agent-work-answer.md";
const MAX_ANSWER_BYTES = 60_000;

/**
 * Reads the answer an `ask` run's agent wrote: a regular file at the root of the work tree, opened
 * without following a link and without blocking on a fifo, at most MAX_ANSWER_BYTES. The text is
 * the agent's, so attacker-controlled: the controller treats it as data before it posts it.
 */
function readAnswer(repo) {
  const file = path.join(repo, ANSWER_FILE);
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buf = Buffer.alloc(MAX_ANSWER_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, Math.min(n, MAX_ANSWER_BYTES)).toString("utf8");
    return n > MAX_ANSWER_BYTES ? `${text}\n\n[… the answer was cut at ${MAX_ANSWER_BYTES} bytes]` : text;
  } finally {
    fs.closeSync(fd);
  }
}

/** A patch returned instead of a push (no-secrets runs) is cut at this size. */
const MAX_PATCH_CHARS = 200_000;
const MAX_LISTED = 5;
/** Where the agent's HTTP(S)_PROXY points inside its own network namespace. */
const FORWARDER_PORT = 3128;

function countLines(text) {
  return text.split("\0").filter((s) => s.length > 0).length;
}

/**
 * Removes whatever stands in the way of `rel` inside `repo` without following it: a symlink or a
 * file where a folder on the way should be, and `rel` itself. Nothing outside `repo` is touched.
 */
function clearPath(repo, rel) {
  const parts = rel.split("/");
  let p = repo;
  for (let i = 0; i < parts.length; i++) {
    p = path.join(p, parts[i]);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    const last = i === parts.length - 1;
    if (last || !st.isDirectory()) {
      fs.rmSync(p, { recursive: true, force: true });
      return;
    }
  }
}

/**
 * Makes `paths` in the working tree and index exactly what `treeish` has (absent where it has
 * none). Used on pull requests: the agent reads the base branch's steering files (AGENTS.md and
 * the like), not the PR author's, and afterwards the PR's own versions are put back so the swap
 * never lands in the commit.
 */
async function swapSteering(git, repo, treeish, paths) {
  for (const rel of paths) {
    // -f: after the agent the index, the tree and HEAD may all differ (it edited a steering file).
    await git.ok(["rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", rel], "git rm");
    clearPath(repo, rel);
    const present = (await git.run(["ls-tree", "--name-only", treeish, "--", rel])).stdout.trim();
    if (present) await git.ok(["checkout", treeish, "--", rel], "checkout");
  }
}

function listed(items) {
  const shown = items.slice(0, MAX_LISTED).join(", ");
  return items.length > MAX_LISTED ? `${shown} and ${items.length - MAX_LISTED} more` : shown;
}

export async function runJob(input, cwd) {
  const layout = {
    cwd,
    repo: path.join(cwd, "repo"),
    prompt: path.join(cwd, "prompt.md"),
    home: path.join(cwd, "home"),
    gitDir: path.join(cwd, "git"),
    objects: path.join(cwd, "git", "objects"),
  };
  const { repo } = layout;
  // Refuse before the token is used at all when the agent could not be sandboxed as asked.
  const planned = planSandbox(input, cwd);
  if (!planned.ok) {
    emitLog("worker", planned.message);
    return { outcome: "error", message: planned.message };
  }
  const plan = planned.plan;
  const limits = plan.limits ?? DEFAULT_LIMITS;
  const privateDir = makePrivateDir();
  runtime.privateDir = privateDir;
  emitLog("worker", `private dir ${privateDir} (mode 0700)`);
  const git = createGit({ gitDir: layout.gitDir, workTree: repo, remoteUrl: input.cloneUrl, privateDir });

  // clone
  emitStep("clone", "started");
  for (const p of [repo, layout.gitDir]) fs.rmSync(p, { recursive: true, force: true });
  if (input.token) armCredentials(privateDir, input.token, input.cloneUrl);
  // An issue's branch that a run before this one pushed (a second label, a retry, a requeued
  // start): the agent goes on from it, and the push adds to it instead of being refused.
  let continued = false;
  try {
    if (input.continueBranch) continued = await remoteHasBranch(git, input.cloneUrl, input.branch, cwd);
    if (continued) emitLog("worker", `${input.branch} exists: the agent goes on from it`);
    await git.ok(
      [
        "clone",
        "--quiet",
        "--no-recurse-submodules",
        "--single-branch",
        "--branch",
        continued ? input.branch : input.baseBranch,
        "--separate-git-dir",
        layout.gitDir,
        "--",
        input.cloneUrl,
        repo,
      ],
      "clone",
      { cwd, dirs: {} },
    );
    runtime.baseSha = await git.ok(["rev-parse", "HEAD"], "rev-parse");
    // A branch to continue was written by an earlier agent or anyone with write access: its
    // steering files are swapped for the default branch's, as on a pull request.
    if (input.steering && (!input.continueBranch || continued)) {
      await git.ok(
        ["fetch", "--quiet", "--no-tags", "--depth=1", "--", input.steering.fromUrl ?? input.cloneUrl, `refs/heads/${input.steering.fromBranch}`],
        "fetch",
      );
      const from = await git.ok(["rev-parse", "FETCH_HEAD"], "rev-parse");
      await swapSteering(git, repo, from, input.steering.paths);
      emitLog("worker", `agent-steering files taken from ${input.steering.fromBranch}`);
    }
    // Whatever the repository holds under the answer's name is not the agent's answer.
    if (input.ask) fs.rmSync(path.join(repo, ANSWER_FILE), { recursive: true, force: true });
    await prepareAgentRepository(git, { repo, baseSha: runtime.baseSha, baseBranch: input.baseBranch, cloneUrl: input.cloneUrl, author: input.author });
    if (plan.kind === "bwrap" && plan.asRoot) shareObjectsReadOnly(layout.gitDir);
  } catch (err) {
    emitStep("clone", "failed", err.message);
    return { outcome: "error", message: err.message, baseSha: runtime.baseSha };
  } finally {
    disarmCredentials(privateDir);
  }
  emitStep("clone", "finished", runtime.baseSha);
  const baseSha = runtime.baseSha;
  const continuedField = continued ? { continued: true } : {};

  // setup: the repository's commands, with the network and the dependency cache, before the agent
  const cache = input.cache ? await openDependencyCache(input.cache, cwd, plan) : null;
  let agent;
  let proxy = null;
  let agentSeconds = input.agentTimeoutSeconds;
  try {
    if (input.setup) {
      emitStep("setup", "started");
      const started = Date.now();
      // Setup's time counts in the job's: it gets at most all of it, and the agent what is left.
      const setup = await runSetup(input, plan, layout, cache, Math.min(input.setup.timeoutSeconds, input.agentTimeoutSeconds));
      const took = (Date.now() - started) / 1000;
      agentSeconds = Math.floor(input.agentTimeoutSeconds - took);
      if (setup.ok && agentSeconds < 1) setup.message = `setup took the job's whole time limit (${input.agentTimeoutSeconds} s); the agent did not run`;
      if (!setup.ok || agentSeconds < 1) {
        emitStep("setup", "failed", setup.message);
        for (const later of ["agent", "commit", "push"]) emitStep(later, "skipped", "setup failed");
        return { outcome: "error", message: setup.message, baseSha };
      }
      const n = input.setup.commands.length;
      emitStep("setup", "finished", `${n} command${n === 1 ? "" : "s"}`);
    }
    agent = await runAgentStep(agentSeconds);
  } finally {
    await cache?.close();
  }
  const blocked = proxy ? proxy.denied().map(({ host, port, count, firstAt }) => ({ host, port, count, firstAt })) : [];
  const blockedField = blocked.length > 0 ? { blocked } : {};
  const result = await commitAndDeliver();
  return { ...result, ...blockedField };

  /** The agent in its sandbox, with its network (none, an allow-list, or the host's) and `seconds` to work. */
  async function runAgentStep(seconds) {
    fs.writeFileSync(layout.prompt, input.prompt, { mode: 0o644 });
    let argv = fillPlaceholders(input.agentArgv, input.prompt, layout.prompt);
    let agentInput = input;
    if (plan.egress) {
      layout.net = path.join(cwd, "net");
      fs.rmSync(layout.net, { recursive: true, force: true });
      fs.mkdirSync(layout.net, { mode: 0o755 });
      fs.chmodSync(layout.net, 0o755);
      const forwarder = path.join(layout.net, "forwarder.mjs");
      fs.writeFileSync(forwarder, FORWARDER_SOURCE, { mode: 0o644 });
      const socketPath = path.join(layout.net, "proxy.sock");
      proxy = await startEgressProxy({
        socketPath,
        allow: plan.egress.allow,
        credentials: plan.egress.credentials,
        onDenied: (d) => emitLog("worker", `network: blocked ${d.host}:${d.port} (${d.why})`),
      });
      const via = `http://127.0.0.1:${FORWARDER_PORT}`;
      const proxyEnv = {
        HTTP_PROXY: via,
        HTTPS_PROXY: via,
        http_proxy: via,
        https_proxy: via,
        ALL_PROXY: via,
        NO_PROXY: "",
        no_proxy: "",
        NODE_USE_ENV_PROXY: "1",
      };
      agentInput = { ...input, agentEnv: { ...input.agentEnv, ...proxyEnv } };
      // Inside the sandbox the folder is at SANDBOX_NET_DIR.
      const inside = (p) => path.join(SANDBOX_NET_DIR, path.basename(p));
      argv = [plan.egress.node, inside(forwarder), inside(socketPath), String(FORWARDER_PORT), "--", ...argv];
      emitLog("worker", `network: allow-list (${plan.egress.allow.join(", ") || "nothing"}) through the worker's proxy; no other way out`);
    }
    emitStep("agent", "started");
    // Under network none or allowlist the agent only reads the cache: what it left there would run,
    // with the network, in the next job's setup.
    const agentLayout = cache ? { ...layout, cache: { dir: cache.dir, writable: plan.kind !== "bwrap" || plan.shareNet } } : layout;
    return runAgent(agentInput, plan, agentLayout, argv, { timeoutSeconds: seconds, cacheEnv: cache?.env ?? {} }).finally(() => proxy?.close());
  }

  /** After the agent: the work tree checked, committed, and pushed (or returned as a patch). */
  async function commitAndDeliver() {
    let limitHit = agent.limitHit;
    const agentOk = !agent.timedOut && !agent.spawnError && !limitHit && agent.exitCode === 0;
    const agentExitCode = agent.exitCode ?? null;
    let agentSummary;
    if (limitHit) agentSummary = limitHit.message;
    else if (agent.timedOut)
      agentSummary = `the agent ran past ${agentSeconds}s${agentSeconds < input.agentTimeoutSeconds ? " (the job's time left after setup)" : ""} and was stopped`;
    else if (agent.spawnError) agentSummary = `the agent could not start: ${agent.spawnError.message}`;
    else if (agent.exitCode === 0) agentSummary = "the agent finished";
    else agentSummary = `the agent exited with ${agent.exitCode === null ? `signal ${agent.signal}` : `code ${agent.exitCode}`}`;
    // SIGXFSZ (25) is the file-size limit; bwrap passes a signal death on as 128 + its number.
    if (plan.kind === "bwrap" && (agent.signal === "SIGXFSZ" || agent.exitCode === 153))
      agentSummary += ` (it wrote a file larger than its disk limit of ${plan.limits.maxDiskMb} MB)`;
    emitStep("agent", agentOk ? "finished" : "failed", agentOk ? "exit 0" : agentSummary);
    const failedOutcome = agent.timedOut && !limitHit ? "timed_out" : "agent_failed";
    const limitField = () => (limitHit ? { limit: limitHit.limit } : {});

    // A question: the answer is read back, and nothing is committed or pushed.
    if (input.ask) {
      const answer = readAnswer(repo);
      emitStep("commit", "skipped", "a question: nothing is committed");
      emitStep("push", "skipped", "a question: nothing is pushed");
      if (!agentOk) return { outcome: failedOutcome, message: agentSummary, baseSha, agentExitCode, ...limitField() };
      if (answer === null || answer.trim() === "")
        return { outcome: "error", message: `${agentSummary} without writing an answer to ${ANSWER_FILE}`, baseSha, agentExitCode };
      return { outcome: "answered", answer, message: `the agent answered (${answer.length} characters)`, baseSha, agentExitCode };
    }

    // The work tree as the agent left it, measured before anything of it is committed.
    if (plan.kind === "bwrap" && limitHit?.limit !== "disk") {
      const kb = await diskUsageKb(repo);
      if (kb !== null && kb > plan.limits.maxDiskMb * 1024) {
        limitHit = {
          limit: "disk",
          message: `the agent's work dir holds ${megabytes(kb)} MB, over its limit of ${plan.limits.maxDiskMb} MB; nothing was pushed`,
        };
        emitLog("worker", limitHit.message);
      }
    }
    // Whatever git would take for its own metadata goes, unread; what git would read without end
    // (a sparse file of many gigabytes) stops the job here.
    let leftOut = [];
    if (limitHit?.limit !== "disk") {
      const prepared = prepareTreeForCommit(repo, { maxTotalBytes: limits.maxDiskMb * MB });
      if (!prepared.ok) {
        emitLog("worker", prepared.message);
        if (prepared.limit === "disk") limitHit = { limit: "disk", message: prepared.message };
        else {
          emitStep("commit", "failed", prepared.message);
          return { outcome: "error", message: `${agentSummary}; ${prepared.message}`, baseSha, agentExitCode };
        }
      } else {
        leftOut = prepared.leftOut;
        for (const item of leftOut) emitLog("worker", `left out of the commit: ${item}`);
      }
    }
    if (limitHit?.limit === "disk") {
      emitStep("commit", "skipped", limitHit.message);
      emitStep("push", "skipped", limitHit.message);
      return { outcome: "agent_failed", limit: "disk", message: limitHit.message, baseSha, agentExitCode };
    }
    const leftOutNote = leftOut.length > 0 ? `; left out of the commit: ${listed(leftOut)}` : "";

    // commit
    emitStep("commit", "started");
    let headSha;
    let filesChanged;
    try {
      if (input.steering && (!input.continueBranch || continued)) await swapSteering(git, repo, "HEAD", input.steering.paths);
      await git.ok(["add", "-A", "--", "."], "git add");
      const staged = (await git.run(["diff", "--cached", "--quiet", "--no-ext-diff"])).code === 1;
      if (!staged) {
        emitStep("commit", "skipped", "no changes");
        emitStep("push", "skipped", "no changes");
        return agentOk
          ? {
              outcome: "no_changes",
              message: `the agent finished without changing any file${leftOutNote}`,
              baseSha,
              agentExitCode,
              filesChanged: 0,
              ...continuedField,
            }
          : { outcome: failedOutcome, message: `${agentSummary} and changed nothing${leftOutNote}`, baseSha, agentExitCode, filesChanged: 0, ...limitField() };
      }
      const { name, email } = input.author;
      await git.ok(["-c", `user.name=${name}`, "-c", `user.email=${email}`, "commit", "--quiet", "--no-verify", "-m", input.commitMessage], "commit");
      headSha = await git.ok(["rev-parse", "HEAD"], "rev-parse");
      filesChanged = countLines(await git.ok(["diff", "--no-ext-diff", "--name-only", "-z", baseSha, headSha], "diff"));
    } catch (err) {
      emitStep("commit", "failed", err.message);
      return { outcome: "error", message: `${agentSummary}; ${err.message}`, baseSha, agentExitCode };
    }
    emitStep("commit", "finished", headSha);
    const files = `${filesChanged} changed file${filesChanged === 1 ? "" : "s"}`;

    if (input.noSecrets) {
      // No token, no push: the change leaves as a patch the controller shows to the maintainers.
      const r = await git.run(["format-patch", "--stdout", "--no-ext-diff", "--no-textconv", `${baseSha}..${headSha}`], { maxStdout: MAX_PATCH_CHARS });
      if (r.code !== 0) {
        emitStep("push", "failed", "format-patch failed");
        return { outcome: "error", message: `${agentSummary}; format-patch failed`, baseSha, headSha, agentExitCode, filesChanged };
      }
      const patch = r.truncated ? `${r.stdout}\n[… patch cut at ${MAX_PATCH_CHARS} characters]\n` : r.stdout;
      emitStep("push", "skipped", "no token in this run: the change is returned as a patch");
      return {
        outcome: agentOk ? "patch" : failedOutcome,
        message: agentOk ? `returned a patch of ${files}${leftOutNote}` : `${agentSummary}; its partial work is in the patch${leftOutNote}`,
        patch,
        headSha,
        baseSha,
        filesChanged,
        agentExitCode,
        ...limitField(),
      };
    }

    // push: to the URL the job names, never to a remote read back from any config
    emitStep("push", "started");
    armCredentials(privateDir, input.token, input.cloneUrl);
    try {
      const pushed = await pushMovingBranch(git, {
        cwd,
        cloneUrl: input.cloneUrl,
        branch: input.branch,
        headSha,
        message: input.commitMessage,
        author: input.author,
      });
      if (!pushed.ok) {
        emitStep("push", "failed", pushed.message);
        return { outcome: "error", message: `${agentSummary}; ${pushed.message}`, baseSha, headSha, agentExitCode, filesChanged, ...continuedField };
      }
      headSha = pushed.headSha;
    } catch (err) {
      emitStep("push", "failed", err.message);
      return { outcome: "error", message: `${agentSummary}; ${err.message}`, baseSha, headSha, agentExitCode, filesChanged, ...continuedField };
    } finally {
      disarmCredentials(privateDir);
    }
    emitStep("push", "finished", input.branch);
    return {
      ...continuedField,
      outcome: agentOk ? "pushed" : failedOutcome,
      message: agentOk
        ? `pushed ${files} to ${input.branch}${leftOutNote}`
        : `${agentSummary}; its partial work (${files}) is on ${input.branch}${leftOutNote}`,
      branch: input.branch,
      headSha,
      baseSha,
      filesChanged,
      agentExitCode,
      ...limitField(),
    };
  }
}
