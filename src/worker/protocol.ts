/**
 * The worker script's progress protocol: one JSON object per line on stdout.
 * The worker script itself (worker/agent-work-worker.mjs) is plain JavaScript with no dependencies
 * so that it can be copied verbatim onto any worker; this file is the controller's typed view of it.
 */
export const STEPS = ["clone", "setup", "agent", "commit", "push"] as const;

/** Where an `ask` run's agent writes its answer, relative to the work tree (the worker removes any before the agent runs). */
export const ANSWER_FILE = ".agent-work-answer.md";
export type StepName = (typeof STEPS)[number];

export type ProgressEvent =
  | { type: "step"; step: StepName; status: "started" | "finished" | "failed" | "skipped"; at: number; detail?: string }
  /** `setup`: the output of the repository's setup commands; `stdout`/`stderr`: the agent's. */
  | { type: "log"; stream: "stdout" | "stderr" | "setup" | "worker"; line: string; at: number }
  | { type: "result"; result: WorkerResult; at: number };

/** What the worker script reports at the end; `outcome` is the one field callers branch on. */
export interface WorkerResult {
  outcome: "pushed" | "patch" | "no_changes" | "answered" | "agent_failed" | "timed_out" | "error";
  /** An `ask` run's answer: the text the agent wrote to ANSWER_FILE, as it wrote it (attacker-controlled). */
  answer?: string;
  /** A no-secrets run's change, as `git format-patch` output, instead of a push. */
  patch?: string;
  /** Set when a branch was pushed (also on agent_failed / timed_out when partial work was pushed). */
  branch?: string;
  headSha?: string;
  baseSha?: string;
  /** Files the agent changed, as `git diff --stat` counted them. */
  filesChanged?: number;
  agentExitCode?: number | null;
  /** Set when a sandbox limit stopped the agent (or, for `disk`, kept its work from being pushed). */
  limit?: "memory" | "processes" | "disk";
  /** The job's branch existed when the worker cloned, and the agent went on from it (`continueBranch`). */
  continued?: boolean;
  /** Under `network: allowlist`: the connections the proxy refused, by host and port. */
  blocked?: { host: string; port: number; count: number; firstAt: number }[];
  message: string;
}

/**
 * What a sandboxed agent may use; the worker script enforces it (prlimit per process, a watchdog
 * over the whole sandbox). Missing fields take the worker's defaults, which match the controller's.
 */
export interface SandboxLimits {
  /** Memory of all the agent's processes together, its /tmp and $HOME included; also each process's data limit. */
  memoryMb: number;
  /** Processes and threads at once; reaching it stops the agent. */
  maxProcesses: number;
  /** The work dir on disk, clone included; past it nothing is pushed. Also each file's size limit. */
  maxDiskMb: number;
}

/**
 * `network: allowlist`: the agent's sandbox has no network of its own; its only way out is the
 * worker's proxy, which lets it reach the `allow` host patterns (`*.npmjs.org`, `api.example.com`,
 * `127.0.0.1:8080`) and adds each credential rule's header itself when forwarding plain-HTTP
 * requests for that host to `upstream`, so the key never enters the sandbox.
 */
export interface EgressPolicy {
  allow: string[];
  credentials?: { host: string; upstream: string; header: string; value: string }[];
}

/** Everything the worker script needs, sent as one JSON document on its stdin (never argv, never env). */
export interface WorkerInput {
  jobId: string;
  /** https clone URL without credentials (e.g. https://github.com/o/r.git). */
  cloneUrl: string;
  baseBranch: string;
  branch: string;
  /** Repo-scoped installation token; used by git through GIT_ASKPASS reading a 0600 file. */
  token: string;
  /** The agent's argv after placeholders ({prompt}, {prompt_file}) are filled in by the worker. */
  agentArgv: string[];
  prompt: string;
  /** The agent reads the prompt on its standard input (the presets: no argv limit for a long discussion). */
  promptOnStdin?: boolean;
  commitMessage: string;
  author: { name: string; email: string };
  /** Seconds the agent step may run before it is killed and the outcome is `timed_out`. */
  agentTimeoutSeconds: number;
  /** Environment for the agent, already filtered through the allowlist by the controller. */
  agentEnv: Record<string, string>;
  /**
   * `bwrap`: the agent runs under bubblewrap (see the worker script); `shareNet` false gives it no
   * network at all. `none`: unsandboxed, the controller's explicit opt-out (LOCAL_SANDBOX=none).
   */
  sandbox: { kind: "bwrap"; roBinds: string[]; shareNet: boolean; limits?: SandboxLimits; egress?: EgressPolicy } | { kind: "none" };
  /**
   * For a pull request: before the agent runs, these paths are replaced with their versions on
   * `fromBranch` (or removed when that branch lacks them); after it runs they are put back as the
   * PR had them, so the swap never lands in the commit.
   */
  steering?: { fromBranch: string; paths: string[]; /** Where `fromBranch` lives, when not at cloneUrl. */ fromUrl?: string };
  /**
   * An issue's run: when `branch` already exists (an earlier run pushed it), clone it instead of
   * `baseBranch` and commit on top of it; `steering` then applies, as on a pull request. The
   * push, if someone moved the branch meanwhile, is retried once on top of their work.
   */
  continueBranch?: boolean;
  /**
   * `/agent ask`: the agent writes its answer to ANSWER_FILE at the root of the work tree; the
   * worker reads it back (a regular file, never through a link, capped) and commits and pushes
   * nothing. The token it gets can only read.
   */
  ask?: boolean;
  /**
   * The repository's `setup:` commands: run one after the other before the agent, each with
   * `/bin/sh -e -c`, in the agent's sandbox (same user, limits and work tree) but with the host's
   * network whatever the agent's, no secret, and the dependency cache read-write. The first that
   * fails ends the job (`error`, naming it) and the agent does not run. `timeoutSeconds` bounds
   * them all together; it counts in `agentTimeoutSeconds`, and the agent gets what is left.
   */
  setup?: { commands: string[]; timeoutSeconds: number };
  /**
   * The repository's dependency cache on this host: `<root>/.dependency-cache/<key>/data`, beside
   * the job folders (the worker runs in `<root>/<job id>/work`), mounted in the sandbox with
   * npm_config_cache, PIP_CACHE_DIR, CARGO_HOME… pointing into it (read-only for an agent whose
   * network is not `full`). After the agent, while the caches on the host hold more than `maxMb`,
   * the one used longest ago is emptied. `key` is one folder name, unique to the repository.
   */
  cache?: { key: string; maxMb: number };
  /**
   * A run that holds no secret at all (a fork's pull request): `token` is empty, the clone is
   * anonymous, the agent gets no environment, and the change comes back as a `patch`.
   */
  noSecrets?: boolean;
  /**
   * The token is not in this document (`token` is empty): the worker reads it from this Secret
   * Manager version with its VM's own identity, through the metadata server (GCE_TOKEN_DELIVERY=
   * secret-manager). The endpoints are the real ones unless a test points them at a fake.
   */
  tokenFrom?: { secretVersion: string; metadataUrl?: string; secretManagerUrl?: string };
}
