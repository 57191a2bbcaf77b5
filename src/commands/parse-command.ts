import { COMMANDS, findCommand, type FlagName, type Verb } from "./command-table.js";

export interface CommandFlags {
  backend?: string;
  machine?: string;
  maxMinutes?: number;
  model?: string;
}

export type ParsedCommand =
  | { ok: true; verb: Verb; flags: CommandFlags; instructions: string; line: string }
  | { ok: false; error: "unknown_verb"; word: string; suggestion?: string; line: string }
  | { ok: false; error: "bad_flag"; message: string; line: string };

/** `/agent` at the very start of the first line, followed by a space or the end of the line. */
const TRIGGER = /^\/agent(?=\s|$)/i;

/**
 * Reads a new comment's first line as an `/agent` command. Returns null when the comment is not
 * a command — including when `/agent` sits in a quote (`>`), a fenced or indented code block, or
 * anywhere but the start of the first line. Never throws.
 */
export function parseCommand(body: string | null | undefined): ParsedCommand | null {
  if (typeof body !== "string") return null;
  const text = body.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  const newline = text.indexOf("\n");
  const first = newline === -1 ? text : text.slice(0, newline);
  // Markdown: 4+ leading spaces or a tab make a code block; `>` a quote; ``` a fence. Only an
  // unindented (≤ 3 spaces) line is prose a person typed as a command.
  const lead = /^ {0,3}(?! )/.exec(first);
  if (!lead) return null;
  const line = first.slice(lead[0].length).trimEnd();
  if (!TRIGGER.test(line)) return null;
  const rest = text.slice(newline === -1 ? text.length : newline + 1);

  const words = line.slice("/agent".length).trim();
  if (words === "") return { ok: true, verb: "help", flags: {}, instructions: "", line };
  const [word = "", ...after] = words.split(/\s+/);
  const spec = findCommand(word);
  if (!spec) {
    const suggestion = closest(
      word.toLowerCase(),
      COMMANDS.flatMap((c) => [c.verb, ...c.aliases]),
    );
    return { ok: false, error: "unknown_verb", word: word.slice(0, 40), ...(suggestion ? { suggestion } : {}), line };
  }

  const flags: CommandFlags = {};
  let i = 0;
  for (; i < after.length; i++) {
    const token = after[i]!;
    if (!token.startsWith("--")) break;
    if (token === "--") {
      i++;
      break;
    }
    const eq = token.indexOf("=");
    const name = (eq === -1 ? token.slice(2) : token.slice(2, eq)).toLowerCase() as FlagName;
    if (!spec.flags.includes(name)) {
      const known = spec.flags.length ? `; \`${spec.verb}\` takes ${spec.flags.map((f) => `\`--${f}\``).join(", ")}` : `; \`${spec.verb}\` takes no flags`;
      return { ok: false, error: "bad_flag", message: `unknown flag \`${token.slice(0, 40)}\`${known}`, line };
    }
    let value = eq === -1 ? after[++i] : token.slice(eq + 1);
    if (value === undefined || value === "" || value.startsWith("--")) {
      return { ok: false, error: "bad_flag", message: `\`--${name}\` needs a value`, line };
    }
    value = value.slice(0, 100);
    if (name === "max-minutes") {
      if (!/^\d{1,4}$/.test(value) || Number(value) < 1) {
        return { ok: false, error: "bad_flag", message: `\`--max-minutes\` takes a whole number of minutes, not \`${value.slice(0, 20)}\``, line };
      }
      flags.maxMinutes = Number(value);
    } else if (name === "model") {
      // A model name may name its provider (`anthropic/claude-sonnet-4-5`); it lands in argv after
      // `--model`, so no leading dash. Whether the repository allows it is the config's to say.
      if (!/^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$/.test(value)) {
        return {
          ok: false,
          error: "bad_flag",
          message: `\`--model\` takes a model name of letters, digits and \`. _ : / @ + -\`, not \`${value.slice(0, 20)}\``,
          line,
        };
      }
      flags.model = value;
    } else if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) {
      return {
        ok: false,
        error: "bad_flag",
        message: `\`--${name}\` takes a name of letters, digits, \`.\`, \`_\` and \`-\`, not \`${value.slice(0, 20)}\``,
        line,
      };
    } else if (name === "backend") {
      flags.backend = value;
    } else {
      flags.machine = value;
    }
  }
  const instructions =
    spec.verb === "run" || spec.verb === "ask"
      ? [after.slice(i).join(" "), rest]
          .filter((s) => s.trim() !== "")
          .join("\n")
          .trim()
      : "";
  if (spec.verb === "ask" && instructions === "") return { ok: false, error: "bad_flag", message: "`/agent ask` needs a question after it", line };
  return { ok: true, verb: spec.verb, flags, instructions, line };
}

/** The nearest known word within edit distance 2, for "did you mean". */
function closest(word: string, candidates: string[]): string | undefined {
  let best: { w: string; d: number } | undefined;
  for (const c of candidates) {
    const d = distance(word.slice(0, 20), c);
    if (d <= 2 && (!best || d < best.d)) best = { w: c, d };
  }
  return best?.w;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
