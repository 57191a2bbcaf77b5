#!/usr/bin/env node
// agent-work worker script: clone, set up, run the agent in a sandbox, commit, push.
//
// Plain JavaScript with Node built-ins only: this file and lib/ beside it are copied verbatim onto
// workers (VMs, SSH hosts, pods). It reads ONE JSON document (WorkerInput, see
// src/worker/protocol.ts) from stdin and speaks the progress protocol on stdout: one JSON object per
// line (step / log / result), ending with exactly one `result`.
//
// Three zones of trust meet here. The token is the one secret: it lives in a 0600 file in a private
// 0700 folder only while git clones or pushes, and reaches git only through a credential helper
// that answers for this job's remote and no other; it is never in argv, in a child's environment,
// in a URL, in any git config or on stdout (every line is redacted). The agent is hostile: it runs
// in bubblewrap (lib/sandbox-plan.mjs) with its work tree and nothing of the worker's, and what it
// leaves behind — files, links, anything that looks like git metadata, its output — is data to
// everything after it (lib/work-tree.mjs, lib/git.mjs).
//
//   lib/input.mjs         the input document and its validation
//   lib/output.mjs        the protocol and its redaction
//   lib/sandbox-plan.mjs  whether and how the agent is sandboxed here; bubblewrap's command line
//   lib/watchdog.mjs      the sandbox's processes, memory and disk, watched from outside
//   lib/sandboxed-run.mjs one command in the sandbox: its output, time limit and watchdog
//   lib/setup.mjs         the setup step: the repository's commands, with the network, before the agent
//   lib/dependency-cache.mjs  the repository's npm/pip/cargo… cache, kept between jobs on one host
//   lib/agent.mjs         the agent step
//   lib/git.mjs           every git command, the credential helper, the agent's own repository
//   lib/work-tree.mjs     the work tree after the agent, walked without following links
//   lib/job.mjs           the steps of one job
//   lib/processes.mjs     the worker's children and private folder
//   lib/egress-proxy.mjs  the agent's only way out under network: allowlist
//   lib/fetch-token.mjs   the token from Secret Manager, when the input names it instead of holding it

import { Buffer } from "node:buffer";
import { fetchTokenFromSecretManager } from "./lib/fetch-token.mjs";
import { readFirstDocument, validateInput } from "./lib/input.mjs";
import { runJob } from "./lib/job.mjs";
import { emitResult, setSecrets } from "./lib/output.mjs";
import { children, killGroup, removePrivateDir, runtime } from "./lib/processes.mjs";

const OUTCOMES = new Set(["pushed", "patch", "no_changes", "answered", "agent_failed", "timed_out", "error"]);

function stop(signal) {
  if (runtime.agentPid) killGroup(runtime.agentPid, "SIGKILL");
  for (const c of children) c.kill("SIGKILL");
  removePrivateDir();
  emitResult({ outcome: "error", message: `worker stopped by ${signal}`, baseSha: runtime.baseSha });
  process.exit(0);
}

async function main() {
  let input;
  /** The VM's access token (and the job's token) when read from Secret Manager. */
  const fetchedSecrets = [];
  try {
    const text = await readFirstDocument(process.stdin);
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      // JSON.parse quotes the input in its message, and the input holds the token.
      throw new Error("input is not valid JSON");
    }
    if (typeof parsed?.token === "string") setSecrets([parsed.token]);
    input = validateInput(parsed);
  } catch (err) {
    emitResult({ outcome: "error", message: `bad worker input: ${err.message}` });
    process.exitCode = 2;
    return;
  }
  if (input.tokenFrom) {
    // Kept out of the input document: read now with the VM's identity (GCE_TOKEN_DELIVERY=secret-manager).
    try {
      const { token } = await fetchTokenFromSecretManager(input.tokenFrom, (s) => {
        fetchedSecrets.push(s);
        setSecrets(fetchedSecrets);
      });
      input = { ...input, token };
    } catch (err) {
      emitResult({ outcome: "error", message: err.message });
      process.exitCode = 2;
      return;
    }
  }
  const token = input.token;
  // The model key the egress proxy adds for the agent is a secret too: it never reaches stdout.
  const proxyKeys = input.sandbox.kind === "bwrap" ? (input.sandbox.egress?.credentials ?? []).map((c) => c.value) : [];
  setSecrets([
    ...(token ? [token, encodeURIComponent(token), Buffer.from(`x-access-token:${token}`).toString("base64")] : []),
    ...proxyKeys,
    ...fetchedSecrets,
  ]);
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(s, () => stop(s));

  let result;
  try {
    result = await runJob(input, process.cwd());
  } catch (err) {
    result = { outcome: "error", message: `worker failed: ${err?.message ?? err}`, baseSha: runtime.baseSha };
  } finally {
    removePrivateDir();
  }
  if (!OUTCOMES.has(result.outcome)) result = { outcome: "error", message: `internal: unknown outcome ${result.outcome}` };
  emitResult(result);
  process.exit(0);
}

main().catch((err) => {
  // What escaped main() still ends in a result line (redacted like every other), not a bare stack.
  emitResult({ outcome: "error", message: `worker failed: ${err?.message ?? err}`, baseSha: runtime.baseSha });
  process.exit(1);
});
