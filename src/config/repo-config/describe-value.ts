/**
 * Shows a value from the file inside a Markdown code span, shortened: the message ends up in a
 * GitHub comment, and an `@name` or a link in a code span pings and renders nobody.
 */
export function show(value: unknown): string {
  let text: string;
  if (typeof value === "string") text = value;
  else if (value === null || value === undefined) text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  const flat = text.replace(/[`\r\n\t]/g, " ");
  const short = flat.length > 40 ? `${flat.slice(0, 37)}...` : flat;
  return `\`${short}\``;
}

export function describeType(value: unknown): string {
  if (value === null) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${show(value)}`;
}
