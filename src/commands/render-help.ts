import { COMMANDS, FLAG_HELP } from "./command-table.js";

/** The help text: the bot's reply to `/agent help` and the README's command list, from one table. */
export function renderHelp(options: { requiredPermission: string; triggerLabel: string }): string {
  const who = (c: (typeof COMMANDS)[number]) => (c.who === "write" ? `people with \`${options.requiredPermission}\` access or more` : "anyone");
  const rows = COMMANDS.map((c) => `| \`${c.usage}\`${c.aliases.length ? ` (or \`/agent ${c.aliases.join("`, `/agent ")}\`)` : ""} | ${c.does} | ${who(c)} |`);
  const flags = [...new Set(COMMANDS.flatMap((c) => c.flags))].map((f) => `- ${FLAG_HELP[f]}`);
  return [
    "**agent-work commands** — write one as the first line of a new comment on an issue or pull request, of a pull request review, or of an inline review comment:",
    "",
    "| command | what it does | who may use it |",
    "| --- | --- | --- |",
    ...rows,
    "",
    "Flags for `run`, before the instructions:",
    ...flags,
    "",
    "`/agent run` in a review or an inline review comment works on the pull request's branch with the review's comments (file, line, diff hunk) in the prompt, and answers in their threads.",
    "",
    `Adding the label \`${options.triggerLabel}\` (or \`${options.triggerLabel}:<size>\` for a size from \`sizes\` in \`.github/agent-work.yml\`) does the same as \`/agent run\`. Commands in quotes or code blocks are ignored, and so are comments by bots.`,
  ].join("\n");
}
