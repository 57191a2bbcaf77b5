import type { ProgressEvent, WorkerResult } from "./protocol.js";
import { createLineSplitter, createProgressParser } from "./parse-progress.js";

const STDERR_TAIL = 20;

/**
 * What every backend does with a running worker script's output: stdout is the progress protocol
 * (parsed, one result kept — the protocol promises one, a second is not forwarded), stderr is not
 * protocol (a crash trace, a warning) and becomes `worker` log lines, of which the last few are
 * kept to explain a worker that died without a result. The token is cut out of every line.
 */
export function createWorkerOutput(token: string | undefined, onEvent: (e: ProgressEvent) => void, now: () => number) {
  const redact = (line: string) => (token ? line.split(token).join("[REDACTED]") : line);
  let result: WorkerResult | undefined;
  const stdout = createProgressParser(
    (e) => {
      if (e.type === "result") {
        if (result) return;
        result = e.result;
      }
      onEvent(e);
    },
    { now, redact },
  );
  const stderrTail: string[] = [];
  const stderr = createLineSplitter((raw) => {
    const line = redact(raw);
    stderrTail.push(line);
    if (stderrTail.length > STDERR_TAIL) stderrTail.shift();
    onEvent({ type: "log", stream: "worker", line, at: now() });
  });
  return {
    stdout,
    stderr,
    redact,
    result: () => result,
    /** The last lines of stderr, for an error message. */
    stderrTail: (n = 5) => stderrTail.slice(-n).join(" | "),
  };
}
