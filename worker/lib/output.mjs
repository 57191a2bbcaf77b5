// The progress protocol on stdout (one JSON object a line: step / log / result, exactly one result)
// and the redaction every line goes through on its way out.

const MAX_LOG_LINE = 8000;

/** Strings that must never leave this process (filled once the input is read). */
let secrets = [];
let resultEmitted = false;

// Anything shaped like a GitHub token (both the 40-character and the ~520-character JWT format).
const TOKEN_SHAPE = /\bgh[pousr]_[A-Za-z0-9_.-]{20,}/g;

export function setSecrets(list) {
  secrets = list.filter(Boolean);
}

export function redact(text) {
  let out = text;
  for (const s of secrets) out = out.split(s).join("[REDACTED]");
  return out.replace(TOKEN_SHAPE, "[REDACTED]");
}

function emit(event) {
  process.stdout.write(redact(JSON.stringify(event)) + "\n");
}

export function emitStep(step, status, detail) {
  emit(detail === undefined ? { type: "step", step, status, at: Date.now() } : { type: "step", step, status, at: Date.now(), detail: redact(String(detail)) });
}

export function emitLog(stream, line) {
  const clean = redact(line);
  emit({ type: "log", stream, line: clean.length > MAX_LOG_LINE ? clean.slice(0, MAX_LOG_LINE) + "…" : clean, at: Date.now() });
}

export function emitResult(result) {
  if (resultEmitted) return;
  resultEmitted = true;
  emit({ type: "result", result: { ...result, message: redact(result.message) }, at: Date.now() });
}

/** A name the agent chose, made safe to print on one line: control characters escaped, length capped. */
export function printable(name, max = 200) {
  const escaped = JSON.stringify(String(name)).slice(1, -1);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}
