/** GitHub refuses comments over 65,536 characters; the frame around the answer needs a little. */
const MAX_ANSWER_CHARS = 60_000;

/**
 * An `/agent ask` answer as it may be posted. The text is the agent's, and a prompt-injected agent
 * writes what it is told to, so it is data: nothing in it may act when the comment is shown.
 * - HTML comments go, so it cannot carry a hidden marker (`<!-- agent-work:… -->`) that this app
 *   would later take for one of its own comments.
 * - Images go (markdown and HTML): a browser loads them when the comment is shown, so an image URL
 *   is a way out for whatever the agent read, even when its sandbox had no network.
 * - Every other `<` is escaped: no raw HTML at all.
 * - `@name` and `@org/team` are shown as code, so an answer notifies nobody.
 * Links stay: they need a click, and answers cite URLs.
 */
export function renderAgentAnswer(answer: string): string {
  let text = answer.replace(/\r\n?/g, "\n");
  for (let previous = ""; previous !== text;) {
    previous = text;
    text = text.replace(/<!--[\s\S]*?(?:-->|$)/g, "");
  }
  text = text.replace(/!\[(?:[^\]\\\n]|\\.)*\]\([^)\n]*\)|!\[(?:[^\]\\\n]|\\.)*\]\[[^\]\n]*\]/g, "[image removed]");
  text = text.replace(/<img\b[^>]*>?/gi, "[image removed]");
  text = text.replace(/</g, "&lt;");
  text = text.replace(/(^|[^\w`@])@([A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\/[A-Za-z0-9._-]{1,100})?)/g, "$1`@$2`");
  text = text.trim();
  return text.length > MAX_ANSWER_CHARS ? `${text.slice(0, MAX_ANSWER_CHARS)}\n\n[… the answer was cut by agent-work]` : text;
}
