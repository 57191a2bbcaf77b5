/**
 * Runs the worker script on a host reached over SSH, shared by the `ssh` and `gce` backends.
 *
 * One command with a fixed command line makes the job's folder, unpacks the script's files into it
 * and runs them: no text from the job reaches the remote shell except the folder and node paths,
 * quoted. The files and then the WorkerInput — the installation token with it — travel on the
 * channel's stdin, so the token is never in an argv, an
 * environment or a file in clear on the host (the worker script itself keeps it in a 0600 file on
 * tmpfs only while git needs it). The worker runs in a session and process group of its own whose
 * id is recorded in a pidfile; a stop kills that group and everything working in the folder, since
 * closing a channel without a PTY leaves the remote command running.
 */
import type { NodeSSH } from "node-ssh";
import type { RunResult } from "../backends/types.js";
import { createWorkerOutput } from "../worker/worker-output.js";
import type { ProgressEvent, WorkerInput } from "../worker/protocol.js";
import { readWorkerFiles } from "../worker/worker-script-path.js";
import { checkRemoteWorkDir, REMOTE_PID_FILE, REMOTE_STOP_FILE, REMOTE_WORK_SUBDIR, REMOTE_WORKER_DIR, REMOTE_WORKER_SCRIPT } from "./remote-work-dir.js";
import { shellQuote } from "./shell-quote.js";
import { stopRemoteWorker } from "./stop-remote-worker.js";

export interface RunWorkerOverSshOptions {
  /** The job's folder on the host: absolute, or relative to the login user's home. */
  workDir: string;
  input: WorkerInput;
  onEvent: (e: ProgressEvent) => void;
  /** Aborting stops the whole remote process tree; the result then says `aborted: true`. */
  signal: AbortSignal;
  /** The worker is killed after this many seconds and the outcome is `timed_out`. */
  maxSeconds: number;
  /** Node on the host (default `node`, found on the login PATH). */
  nodePath?: string;
  /** The worker script's folder, sent with the input (default: worker/ of this build). */
  workerDir?: string;
  /** Between SIGTERM and SIGKILL when the worker is stopped (default 5000). */
  killGraceMs?: number;
  now?: () => number;
  /** The secret to redact from the worker's output when it is not in `input` (a token the worker fetches itself). */
  redactToken?: string;
}

/** The host's own `timeout` fires this long after the controller's timer: a dead man's switch for a controller that died. */
const REMOTE_TIMEOUT_SLACK_SECONDS = 30;

/**
 * The command run inside the job's `work/` folder after `setsid`: records its pid (the new group's
 * id), refuses to start once a stop was asked for, and execs node under the host's `timeout` with a
 * minimal environment, running LOADER_SCRIPT. `$1` is the timeout in seconds, `$2` the node binary,
 * `$3` the loader.
 */
const START_SCRIPT =
  `echo $$ > ../${REMOTE_PID_FILE} && [ ! -e ../${REMOTE_STOP_FILE} ] && ` +
  `exec env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 timeout -k 10 "$1" "$2" -e "$3"`;

/** The length of the worker files' JSON on stdin: this many decimal digits, then a newline. */
const FILES_LENGTH_DIGITS = 12;

/**
 * Unpacks the worker script's files into a fresh `worker/` beside `work/`, then imports its entry
 * in the same node process, which reads the WorkerInput from what is left of stdin. stdin carries,
 * in order: the byte length of the files' JSON (FILES_LENGTH_DIGITS digits and a newline), that
 * JSON (`{ "<relative path>": "<text>" }`), then the input. The files are read with blocking reads
 * of exactly their length, so not one byte of the input is taken before the worker reads it.
 * Unpacking here rather than in a command of its own spares a node start and an SSH round trip on
 * every job. Fixed text: nothing of the job reaches it but the data on stdin, whose names it checks.
 */
export const LOADER_SCRIPT = [
  `const fs = require("fs"), path = require("path"), url = require("url");`,
  `const pause = new Int32Array(new SharedArrayBuffer(4));`,
  `function readExactly(n) {`,
  `  const buf = Buffer.alloc(n);`,
  `  for (let got = 0; got < n; ) {`,
  `    let r;`,
  `    try { r = fs.readSync(0, buf, got, n - got, null); }`,
  `    catch (e) { if (e.code === "EAGAIN") { Atomics.wait(pause, 0, 0, 5); continue; } throw e; }`,
  `    if (r === 0) throw new Error("stdin ended inside the worker script's files");`,
  `    got += r;`,
  `  }`,
  `  return buf;`,
  `}`,
  `const header = readExactly(${FILES_LENGTH_DIGITS + 1}).toString("latin1");`,
  `if (!/^[0-9]{${FILES_LENGTH_DIGITS}}\\n$/.test(header)) throw new Error("bad worker files header on stdin");`,
  `const files = JSON.parse(readExactly(Number(header)).toString("utf8"));`,
  `const dir = path.resolve("..", ${JSON.stringify(REMOTE_WORKER_DIR)}), fresh = dir + ".new";`,
  `fs.rmSync(fresh, { recursive: true, force: true });`,
  `for (const [rel, body] of Object.entries(files)) {`,
  `  if (!/^[a-z0-9-]+(\\/[a-z0-9-]+)*\\.mjs$/.test(rel)) throw new Error("refused worker file name " + JSON.stringify(rel));`,
  `  fs.mkdirSync(path.dirname(path.join(fresh, rel)), { recursive: true, mode: 0o700 });`,
  `  fs.writeFileSync(path.join(fresh, rel), body, { mode: 0o600 });`,
  `}`,
  `fs.rmSync(dir, { recursive: true, force: true });`,
  `fs.renameSync(fresh, dir);`,
  `import(url.pathToFileURL(path.resolve("..", ${JSON.stringify(REMOTE_WORKER_SCRIPT)})).href);`,
].join("\n");

/**
 * Makes the job's folder (0700) and `work/` in it, clears a stop or pidfile left by an earlier
 * run, and starts the worker in a session of its own (START_SCRIPT): one command, one channel.
 */
function startCommand(workDir: string, timeoutSeconds: number, nodePath: string): string {
  const at = (name: string) => shellQuote(`${workDir}/${name}`);
  return [
    // Only the folders are made private this way: the worker keeps the login's own umask.
    `(umask 077 && mkdir -p -- ${at(REMOTE_WORK_SUBDIR)})`,
    `chmod 700 -- ${shellQuote(workDir)}`,
    `rm -f -- ${at(REMOTE_STOP_FILE)} ${at(REMOTE_PID_FILE)}`,
    `cd ${at(REMOTE_WORK_SUBDIR)}`,
    `exec setsid -w sh -c ${shellQuote(START_SCRIPT)} sh ${timeoutSeconds} ${shellQuote(nodePath)} ${shellQuote(LOADER_SCRIPT)}`,
  ].join(" && ");
}

/** What stdin carries before the WorkerInput: the files' length, then the files (see LOADER_SCRIPT). */
export function workerFilesPreamble(files: Record<string, string>): string {
  const json = JSON.stringify(files);
  return `${String(Buffer.byteLength(json, "utf8")).padStart(FILES_LENGTH_DIGITS, "0")}\n${json}`;
}

/** What this file uses of an ssh2 exec channel (ssh2 ships no type declarations). */
interface ExecChannel {
  on(event: "exit", listener: (code: number | null, signal?: string) => void): this;
  on(event: "close", listener: () => void): this;
  on(event: "data", listener: (chunk: Buffer) => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  stderr: { on(event: "data", listener: (chunk: Buffer) => void): unknown };
  end(data?: string): void;
  close(): void;
}

function openChannel(conn: NodeSSH, command: string): Promise<ExecChannel> {
  const client = conn.connection;
  if (!client) return Promise.reject(Object.assign(new Error("not connected to the worker host"), { code: "ECONNRESET" }));
  return new Promise((resolve, reject) => {
    client.exec(command, (err: Error | undefined, channel: ExecChannel) => (err ? reject(err) : resolve(channel)));
  });
}

export async function runWorkerOverSsh(conn: NodeSSH, options: RunWorkerOverSshOptions): Promise<RunResult> {
  const { input, signal, onEvent } = options;
  const now = options.now ?? Date.now;
  const graceMs = options.killGraceMs ?? 5000;
  const workDir = checkRemoteWorkDir(options.workDir);
  if (signal.aborted) return { outcome: "error", message: "stopped before the worker started", computeSeconds: 0, aborted: true };
  if (!(options.maxSeconds > 0)) return { outcome: "timed_out", message: "the worker had no time left to run", computeSeconds: 0, aborted: false };

  const preamble = workerFilesPreamble(await readWorkerFiles(options.workerDir));

  // Remote stderr (a crash trace, `timeout` or `setsid` complaining) becomes `worker` log lines.
  const output = createWorkerOutput(input.token || options.redactToken, onEvent, now);
  const { redact } = output;

  const timeoutSeconds = Math.ceil(options.maxSeconds) + REMOTE_TIMEOUT_SLACK_SECONDS;
  const started = now();
  const channel = await openChannel(conn, startCommand(workDir, timeoutSeconds, options.nodePath ?? "node"));
  let exit: { code: number | null; signal: string | null } | undefined;
  const closed = new Promise<void>((resolve) => {
    channel.on("exit", (code: number | null, sig?: string) => {
      exit = { code: code ?? null, signal: sig ?? null };
    });
    channel.on("close", () => resolve());
  });
  let isClosed = false;
  void closed.then(() => (isClosed = true));
  let gaveUp = false;
  let giveUp: () => void = () => {};
  const released = new Promise<void>((resolve) => (giveUp = resolve));
  channel.on("data", (chunk: Buffer) => output.stdout.push(chunk));
  channel.stderr.on("data", (chunk: Buffer) => output.stderr.push(chunk));
  channel.on("error", () => undefined);
  // The worker's files, then one JSON document and EOF: the worker reads up to the first newline.
  channel.end(preamble + JSON.stringify(input) + "\n");

  let aborted = false;
  let deadman = false;
  let stopError: unknown;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      // The first stop may land before the worker wrote its pidfile; the stop file keeps a late
      // start from running, and the next round catches what did start.
      for (let round = 0; round < 3 && !isClosed; round++) {
        try {
          await stopRemoteWorker(conn, workDir, { graceMs });
          stopError = undefined;
        } catch (err) {
          stopError = err;
        }
        await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
      }
      // Nothing more can be done from here; destroy() tries again and the host's `timeout` is the
      // last word. sshd may hold the channel open while its command runs, so do not wait for it.
      if (!isClosed) {
        channel.close();
        await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
        gaveUp = true;
        giveUp();
      }
    })();
  };
  const onAbort = () => {
    aborted = true;
    stop();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => {
    deadman = true;
    stop();
  }, options.maxSeconds * 1000);

  await Promise.race([closed, released]);
  clearTimeout(timer);
  signal.removeEventListener("abort", onAbort);
  await stopping;
  output.stdout.end();
  output.stderr.end();
  const result = output.result();

  const computeSeconds = Math.max(0, now() - started) / 1000;
  if (deadman && !aborted) {
    return { ...result, outcome: "timed_out", message: `the worker ran past its ${options.maxSeconds}s limit and was killed`, computeSeconds, aborted: false };
  }
  if (result) return { ...result, computeSeconds, aborted };
  if (aborted) {
    const why =
      stopError instanceof Error
        ? `; stopping it on the host failed: ${stopError.message}`
        : gaveUp
          ? "; the worker host did not confirm that the worker ended"
          : "";
    return { outcome: "error", message: redact(`stopped${why}`), computeSeconds, aborted: true };
  }
  const tail = output.stderrTail();
  const how =
    exit === undefined
      ? "the SSH connection closed before the worker finished"
      : `the worker exited (${exit.code === null ? `signal ${exit.signal}` : `code ${exit.code}`}) without reporting a result`;
  return { outcome: "error", message: redact(`${how}${tail ? `: ${tail}` : ""}`), computeSeconds, aborted: false };
}
