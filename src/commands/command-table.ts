/**
 * Every `/agent` command in one table: the parser, the help reply and the README's command list
 * are all generated from it, so they cannot disagree.
 */
export type Verb = "run" | "ask" | "stop" | "retry" | "status" | "cost" | "help";
export type Audience = "write" | "anyone";

export interface CommandSpec {
  verb: Verb;
  aliases: readonly string[];
  usage: string;
  does: string;
  /** `write`: needs the repository permission REQUIRED_PERMISSION (write by default). */
  who: Audience;
  flags: readonly FlagName[];
}

export type FlagName = "backend" | "machine" | "max-minutes" | "model";

export const FLAG_HELP: Record<FlagName, string> = {
  backend: "`--backend <name>`: where to run (a backend enabled on this controller)",
  machine: "`--machine <size>`: a size from `sizes` in `.github/agent-work.yml`",
  "max-minutes": "`--max-minutes <n>`: stop the agent sooner (at most the repository's `max_minutes`)",
  model: "`--model <name>`: a model from `models` in `.github/agent-work.yml`",
};

export const COMMANDS: readonly CommandSpec[] = [
  {
    verb: "run",
    aliases: [],
    usage: "/agent run [flags] [instructions…]",
    does: "starts the agent on this issue or pull request, with your instructions added to the prompt",
    who: "write",
    flags: ["backend", "machine", "max-minutes", "model"],
  },
  {
    verb: "ask",
    aliases: [],
    usage: "/agent ask [flags] <question…>",
    does: "the agent reads the code and answers your question in a comment; it changes and pushes nothing (its token can only read)",
    who: "write",
    flags: ["backend", "machine", "max-minutes", "model"],
  },
  {
    verb: "stop",
    aliases: ["cancel"],
    usage: "/agent stop",
    does: "stops the running job (its worker is destroyed) or takes a queued one off the queue",
    who: "write",
    flags: [],
  },
  { verb: "retry", aliases: [], usage: "/agent retry", does: "starts a new job with the inputs of the last one", who: "write", flags: [] },
  { verb: "status", aliases: [], usage: "/agent status", does: "answers with the job's state, current step and cost so far", who: "anyone", flags: [] },
  { verb: "cost", aliases: [], usage: "/agent cost", does: "answers with this job's cost and the repository's total this month", who: "anyone", flags: [] },
  { verb: "help", aliases: [], usage: "/agent help", does: "shows this list", who: "anyone", flags: [] },
];

export function findCommand(word: string): CommandSpec | undefined {
  const w = word.toLowerCase();
  return COMMANDS.find((c) => c.verb === w || c.aliases.includes(w));
}
