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

/**
 * A pino logger whose every line passes the redactor before it reaches the destination (R14).
 * pino hands its stream one complete line per `write`, so a secret is never split across calls.
 */
export function createLogger(options: RedactingLoggerOptions): pino.Logger {
  const destination = options.destination ?? process.stdout;
  const redactedStream: pino.DestinationStream = {
    write(line: string): void {
      destination.write(options.redactor.redact(line));
    },
  };
  return pino(
    {
      level: options.level,
      ...(options.name === undefined ? {} : { name: options.name }),
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    redactedStream,
  );
}
