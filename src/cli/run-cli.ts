import { loadControllerConfig } from "../config/env.js";
import { openCliContext, type CliContext, type CliOutput } from "./cli-context.js";
import { cancelCommand } from "./commands/cancel.js";
import { jobsCommand } from "./commands/jobs.js";
import { reapCommand } from "./commands/reap.js";
import { showCommand } from "./commands/show.js";
import { UsageError } from "./format.js";

/** Every command, with its one-line usage; a new command is one entry here. */
const COMMANDS: Record<string, { usage: string; run: (ctx: CliContext, argv: string[]) => Promise<number> }> = {
  jobs: { usage: "jobs [--state S] [--repo owner/name] [--limit N] [--json]   list jobs, newest first", run: jobsCommand },
  show: { usage: "show <id> [--json]                                          a job and its events", run: showCommand },
  cancel: { usage: "cancel <id>                                                 cancel a job; a running job's worker is destroyed", run: cancelCommand },
  reap: { usage: "reap [--dry-run]                                            one reaper pass; --dry-run only says what it would do", run: reapCommand },
};

/** Commands that judge the configuration themselves, so they run even when it is not valid. */
const RAW_COMMANDS: Record<string, { usage: string; run: (env: Record<string, string | undefined>, io: CliOutput) => Promise<number> }> = {
  doctor: {
    usage: "doctor                                                      check what the gce backend needs, and say how to fix what is missing",
    run: async (env, io) => {
      // Imported on use: the Google Cloud clients take a second to load.
      const { runDoctor, formatDoctorReport } = await import("./doctor.js");
      const report = await runDoctor(env);
      io.out(formatDoctorReport(report));
      return report.ok ? 0 : 1;
    },
  },
};

export function usage(): string {
  return [
    "usage: agent-work <command> [options]",
    "",
    "commands:",
    ...[...Object.values(COMMANDS), ...Object.values(RAW_COMMANDS)].map((c) => `  ${c.usage}`),
    "  help                                                        this text",
    "",
    "The configuration comes from the environment, as for the controller (DATA_DIR, SSH_HOSTS_FILE, GCE_*);",
    "run it where the controller runs, with the same .env.",
  ].join("\n");
}

/** Runs one command line; returns the exit code (0 ok, 1 failed, 2 bad usage or configuration). */
export async function runCli(argv: string[], env: Record<string, string | undefined>, io: CliOutput): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "help" || name === "--help" || name === "-h") {
    io.out(usage());
    return 0;
  }
  const raw = name === undefined ? undefined : RAW_COMMANDS[name];
  if (raw) return raw.run(env, io);
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) {
    io.err(name === undefined ? "no command given" : `unknown command: ${name}`);
    io.err(usage());
    return 2;
  }
  const loaded = loadControllerConfig(env);
  if (!loaded.ok) {
    io.err("the configuration in the environment is not valid:");
    for (const e of loaded.errors) io.err(`  - ${e}`);
    return 2;
  }
  const { context, close } = await openCliContext(loaded.config, io);
  try {
    return await command.run(context, rest);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.err(`${name}: ${(err as Error).message}`);
      io.err(`usage: agent-work ${command.usage.split("  ")[0]}`);
      return 2;
    }
    io.err(`${name} failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await close();
  }
}
