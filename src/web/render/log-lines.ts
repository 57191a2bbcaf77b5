import type { LogLine } from "../../logs/job-log.js";
import type { Redactor } from "../../redact/redactor.js";
import { html, type Html } from "../html.js";
import { formatClock } from "./format-time.js";

/**
 * Log lines as the page shows them. The log is redacted before it is stored; it is redacted again
 * here, on the way out, so a secret the redactor learned since (or a pattern added later) is caught.
 */
export function renderLogLines(lines: LogLine[], redactor: Redactor): Html {
  return html`${lines.map(
    (l) => html`<div class="line stream-${l.stream.replace(/[^a-z]/g, "")}" id="L${l.id}"><time>${formatClock(l.at)}</time><span class="text">${redactor.redact(l.line)}</span></div>`,
  )}`;
}

/** The JSON one SSE `line` event carries; redacted on the way out like the page. */
export function logLineEvent(line: LogLine, redactor: Redactor): string {
  return JSON.stringify({ id: line.id, at: line.at, stream: line.stream, line: redactor.redact(line.line) });
}
