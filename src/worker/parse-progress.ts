import { StringDecoder } from "node:string_decoder";
import { STEPS, type ProgressEvent, type WorkerResult } from "./protocol.js";

export interface ProgressParserOptions {
  now?: () => number;
  /** Applied to every raw line before it is parsed (the worker redacts too; this is the second belt). */
  redact?: (line: string) => string;
  /** A line longer than this without a newline is flushed as a malformed `worker` log line. */
  maxLineLength?: number;
}

const STEP_STATUSES = new Set(["started", "finished", "failed", "skipped"]);
const LOG_STREAMS = new Set(["stdout", "stderr", "setup", "worker"]);
const OUTCOMES = new Set<WorkerResult["outcome"]>(["pushed", "patch", "no_changes", "answered", "agent_failed", "timed_out", "error"]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isWorkerResult(v: unknown): v is WorkerResult {
  return (
    isRecord(v) &&
    OUTCOMES.has(v.outcome as WorkerResult["outcome"]) &&
    typeof v.message === "string" &&
    (v.answer === undefined || typeof v.answer === "string")
  );
}

function isProgressEvent(v: unknown): v is ProgressEvent {
  if (!isRecord(v) || typeof v.at !== "number") return false;
  switch (v.type) {
    case "step":
      return (
        (STEPS as readonly unknown[]).includes(v.step) && STEP_STATUSES.has(v.status as string) && (v.detail === undefined || typeof v.detail === "string")
      );
    case "log":
      return LOG_STREAMS.has(v.stream as string) && typeof v.line === "string";
    case "result":
      return isWorkerResult(v.result);
    default:
      return false;
  }
}

/** One line of worker stdout → one event; anything that is not a protocol event becomes a `worker` log line. */
export function parseProgressLine(line: string, now: () => number = Date.now): ProgressEvent {
  try {
    const value: unknown = JSON.parse(line);
    if (isProgressEvent(value)) return value;
  } catch {
    // not JSON: reported below as it is
  }
  return { type: "log", stream: "worker", line, at: now() };
}

export interface LineSplitter {
  push(chunk: string | Uint8Array): void;
  /** Flushes a last line that had no trailing newline. */
  end(): void;
}

/** Splits a byte stream into lines (UTF-8 safe across chunk boundaries, `\r\n` tolerated, blank lines dropped). */
export function createLineSplitter(onLine: (line: string) => void, maxLineLength = 1_000_000): LineSplitter {
  const decoder = new StringDecoder("utf8");
  let buffer = "";
  const emit = (raw: string) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() !== "") onLine(line);
  };
  return {
    push(chunk) {
      buffer += typeof chunk === "string" ? chunk : decoder.write(Buffer.from(chunk));
      let i: number;
      while ((i = buffer.indexOf("\n")) >= 0) {
        emit(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
      // A line this long without a newline is flushed as it is rather than held forever.
      if (buffer.length > maxLineLength) {
        emit(buffer);
        buffer = "";
      }
    },
    end() {
      buffer += decoder.end();
      if (buffer.length > 0) emit(buffer);
      buffer = "";
    },
  };
}

/** Turns the worker's stdout chunks into progress events; malformed lines become `worker` log lines. */
export function createProgressParser(onEvent: (e: ProgressEvent) => void, options: ProgressParserOptions = {}): LineSplitter {
  const now = options.now ?? Date.now;
  const redact = options.redact ?? ((l: string) => l);
  return createLineSplitter((line) => onEvent(parseProgressLine(redact(line), now)), options.maxLineLength);
}
