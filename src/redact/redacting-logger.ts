import pino from "pino";
import { REDACTED, type Redactor } from "./redactor.js";

/**
 * Header paths pino blanks before serialising, as a first line of defence. Some credentials have no
 * recognisable shape (an opaque OAuth token, a cookie), so we censor them by where they sit; the
 * redactor on the stream below catches everything else by value and by pattern.
 */
const REDACT_PATHS = [
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
  "*.*.headers.authorization",
  "*.*.headers.cookie",
];

export interface RedactingLoggerOptions {
  level: string;
  redactor: Redactor;
  /** Where finished lines go; standard output when omitted. */
  destination?: NodeJS.WritableStream;
  name?: string;
}

/** The `level` and `time` pino writes first on every line, read from a bounded prefix. */
const LINE_HEAD = /^\{"level":(\d{1,3}),"time":(\d{1,16})/;

/**
 * A line the redactor had to cut is no longer JSON; this wraps what is left of it in a line that
 * is, so a log shipper still parses it and an operator sees that something was cut.
 */
function cutLineRecord(original: string, redacted: string): string {
  const head = LINE_HEAD.exec(original.slice(0, 64));
  return `${JSON.stringify({
    level: head ? Number(head[1]) : 40,
    time: head ? Number(head[2]) : Date.now(),
    msg: `log line of ${original.length} characters cut`,
    cut: redacted.trimEnd(),
  })}\n`;
}

/**
 * Writes finished log lines to `destination`, each through the redactor first; a line longer than
 * the redactor's cap is cut before redaction (bounded work whatever is logged) and written as a
 * JSON line that says so. The ingress thread's lines come through here too, on the main thread.
 */
export function redactedLineWriter(redactor: Redactor, destination: NodeJS.WritableStream): (line: string) => void {
  return (line) => {
    const redacted = redactor.redact(line);
    destination.write(line.length > redactor.maxLineChars ? cutLineRecord(line, redacted) : redacted);
  };
}

/** A pino logger with the app's settings (censored header paths) writing whole lines to `stream`. */
export function pinoLogger(stream: pino.DestinationStream, options: { level: string; name?: string }): pino.Logger {
  return pino(
    {
      level: options.level,
      ...(options.name === undefined ? {} : { name: options.name }),
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    stream,
  );
}

/**
 * A pino logger whose every line passes the redactor before it reaches the destination (R14).
 * pino hands its stream one complete line per `write`, so a secret is never split across calls.
 */
export function createLogger(options: RedactingLoggerOptions): pino.Logger {
  const write = redactedLineWriter(options.redactor, options.destination ?? process.stdout);
  return pinoLogger({ write }, options);
}
