import type { LogLine } from "../../logs/job-log.js";
import { html, type Html } from "../html.js";
import { formatClock } from "./format-time.js";

/**
 * Log lines as the page shows them. They were redacted once, on arrival, before they were stored
 * (src/pipeline/follow-progress.ts), and are not redacted again here: a full page is 5,000 lines of up to
 * 4,000 characters, and running the redactor over 20 MB on every view and stream let one job's
 * log stall the controller (issue 14). Every token is known to the redactor before a worker gets
 * it, so nothing a later pass would learn can be in an earlier line.
 */
export function renderLogLines(lines: LogLine[]): Html {
  return html`${lines.map(
    (l) =>
      html`<div class="line stream-${l.stream.replace(/[^a-z]/g, "")}" id="L${l.id}"><time>${formatClock(l.at)}</time><span class="text">${l.line}</span></div>`,
  )}`;
}

/** The JSON one SSE `line` event carries (stored redacted, like the page's lines). */
export function logLineEvent(line: LogLine): string {
  return JSON.stringify({ id: line.id, at: line.at, stream: line.stream, line: line.line });
}
