// The one JSON document the worker reads on stdin (WorkerInput, see src/worker/protocol.ts), and
// its validation: everything in it is checked before anything runs.
import path from "node:path";

const SECRET_VERSION = /^projects\/[a-z0-9-]{1,63}\/secrets\/[A-Za-z0-9_-]{1,255}\/versions\/([0-9]{1,12}|latest)$/;
export const SAFE_NAME = /^(?!-)(?!.*\.\.)(?!\/)[A-Za-z0-9._/-]{1,200}$/;
/** Defaults when the controller sends no limits (they match its SANDBOX_MAX_* defaults). */
export const DEFAULT_LIMITS = { memoryMb: 4096, maxProcesses: 512, maxDiskMb: 10240 };
export const LIMIT_KEYS = ["memoryMb", "maxProcesses", "maxDiskMb"];
/** At most this many setup commands of at most this many characters (the controller's own bounds, src/config/repo-config.ts). */
export const MAX_SETUP_COMMANDS = 20;
export const MAX_SETUP_COMMAND_LENGTH = 4000;
/** A repository's dependency cache folder: one path component (lib/dependency-cache.mjs). */
export const CACHE_KEY = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$/;

/** Reads stdin up to the first newline or EOF: the controller may keep the channel open. */
export function readFirstDocument(stream) {
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

export function validateInput(v) {
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
  } else if (v?.tokenFrom !== undefined) {
    // The token comes from Secret Manager (lib/fetch-token.mjs); the document itself holds none.
    if (v.token !== undefined && v.token !== "") problems.push("a tokenFrom run must not carry a token as well");
    const tf = v.tokenFrom;
    if (typeof tf?.secretVersion !== "string" || !SECRET_VERSION.test(tf.secretVersion))
      problems.push("tokenFrom.secretVersion must be projects/<p>/secrets/<s>/versions/<v>");
    for (const k of ["metadataUrl", "secretManagerUrl"]) {
      if (tf?.[k] !== undefined && !(typeof tf[k] === "string" && /^https?:\/\/[^/@\s]+$/.test(tf[k])))
        problems.push(`tokenFrom.${k} must be a scheme and host, no path or credentials`);
    }
  } else if (!str("token")) {
    problems.push("token must be a non-empty string");
  }
  if (v?.steering?.fromUrl !== undefined) {
    try {
      const u = new URL(v.steering.fromUrl);
      if (u.username || u.password) problems.push("steering.fromUrl must not carry credentials");
      // git may speak one scheme in a job: the clone URL's (the protocol allow-list).
      if (typeof v.cloneUrl === "string" && URL.canParse(v.cloneUrl) && new URL(v.cloneUrl).protocol !== u.protocol)
        problems.push("steering.fromUrl must use the clone URL's scheme");
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
  if (v.promptOnStdin !== undefined && typeof v.promptOnStdin !== "boolean") problems.push("promptOnStdin must be a boolean");
  if (v.ask !== undefined && typeof v.ask !== "boolean") problems.push("ask must be a boolean");
  if (v.continueBranch !== undefined && typeof v.continueBranch !== "boolean") problems.push("continueBranch must be a boolean");
  if (typeof v.author?.name !== "string" || typeof v.author?.email !== "string") problems.push("author needs name and email");
  if (typeof v.agentTimeoutSeconds !== "number" || !(v.agentTimeoutSeconds > 0)) problems.push("agentTimeoutSeconds must be > 0");
  if (v.setup !== undefined) {
    const cmds = v.setup?.commands;
    if (
      !Array.isArray(cmds) ||
      cmds.length === 0 ||
      cmds.length > MAX_SETUP_COMMANDS ||
      !cmds.every((c) => typeof c === "string" && c.trim() !== "" && c.length <= MAX_SETUP_COMMAND_LENGTH && !c.includes("\0"))
    ) {
      problems.push(`setup.commands must be 1 to ${MAX_SETUP_COMMANDS} shell commands of at most ${MAX_SETUP_COMMAND_LENGTH} characters`);
    }
    if (typeof v.setup?.timeoutSeconds !== "number" || !(v.setup.timeoutSeconds > 0)) problems.push("setup.timeoutSeconds must be > 0");
  }
  if (v.cache !== undefined) {
    if (typeof v.cache?.key !== "string" || !CACHE_KEY.test(v.cache.key)) problems.push("cache.key must be one folder name of letters, digits and . _ + -");
    if (!Number.isInteger(v.cache?.maxMb) || v.cache.maxMb < 1) problems.push("cache.maxMb must be a whole number > 0");
  }
  if (typeof v.agentEnv !== "object" || v.agentEnv === null || Object.values(v.agentEnv).some((x) => typeof x !== "string")) {
    problems.push("agentEnv must map names to strings");
  }
  const sb = v.sandbox;
  if (sb?.kind === "bwrap") {
    if (!Array.isArray(sb.roBinds) || !sb.roBinds.every((p) => typeof p === "string" && path.isAbsolute(p))) {
      problems.push("sandbox.roBinds must be absolute paths");
    }
    if (typeof sb.shareNet !== "boolean") problems.push("sandbox.shareNet must be a boolean");
    if (sb.egress !== undefined) {
      const e = sb.egress;
      if (sb.shareNet) problems.push("sandbox.egress needs shareNet false: the proxy is the sandbox's only way out");
      if (!Array.isArray(e?.allow) || !e.allow.every((h) => typeof h === "string" && /^(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$/.test(h)))
        problems.push("sandbox.egress.allow must be host patterns");
      const rules = e?.credentials ?? [];
      if (
        !Array.isArray(rules) ||
        !rules.every(
          (c) =>
            typeof c?.host === "string" &&
            typeof c?.header === "string" &&
            /^[A-Za-z0-9-]+$/.test(c.header) &&
            typeof c?.value === "string" &&
            URL.canParse(c?.upstream ?? ""),
        )
      ) {
        problems.push("sandbox.egress.credentials must be { host, upstream, header, value } rules");
      }
    }
    if (sb.limits !== undefined) {
      if (typeof sb.limits !== "object" || sb.limits === null) problems.push("sandbox.limits must be an object");
      else
        for (const k of LIMIT_KEYS)
          if (sb.limits[k] !== undefined && !(Number.isInteger(sb.limits[k]) && sb.limits[k] > 0))
            problems.push(`sandbox.limits.${k} must be a whole number > 0`);
    }
  } else if (sb?.kind !== "none") {
    problems.push('sandbox.kind must be "bwrap" or "none"');
  }
  if (problems.length > 0) throw new Error(problems.join("; "));
  return v;
}
