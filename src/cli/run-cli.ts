import { readFileSync } from "node:fs";
import { loadControllerConfig } from "../config/env.js";
import { openCliContext, type CliContext, type CliOutput } from "./cli-context.js";
import { cancelCommand } from "./commands/cancel.js";
import { jobsCommand } from "./commands/jobs.js";
import { reapCommand } from "./commands/reap.js";
import { showCommand } from "./commands/show.js";
import { findStore } from "./find-store.js";
import { UsageError } from "./format.js";

interface Command {
  /** `name [options]`, then what it does, for the command list. */
  usage: string;
  summary: string;
  /** What `agent-work <name> --help` adds: each option and argument. */
  help: string[];
}

/** Commands that work on the controller's store (which must already exist: they never create one). */
const STORE_COMMANDS: Record<string, Command & { run: (ctx: CliContext, argv: string[]) => Promise<number> }> = {
  jobs: {
    usage: "jobs [--state S] [--repo owner/name] [--limit N] [--json]",
    summary: "list jobs, newest first",
    help: [
      "--state S          only jobs in state S (queued, running, succeeded, failed, …)",
      "--repo owner/name  only jobs of that repository",
      "--limit N          at most N jobs (default 50)",
      "--json             the jobs as JSON",
    ],
    run: jobsCommand,
  },
  show: {
    usage: "show <id> [--json]",
    summary: "a job and its events",
    help: ["<id>    the job's id (the first column of `jobs`)", "--json  the job and its events as JSON"],
    run: showCommand,
  },
  cancel: {
    usage: "cancel <id>",
    summary: "cancel a job; a running job's worker is destroyed",
    help: ["<id>  the job's id; a queued job leaves the queue, a running one is marked cancelled and its worker destroyed"],
    run: cancelCommand,
  },
  reap: {
    usage: "reap [--dry-run]",
    summary: "one reaper pass; --dry-run only says what it would do",
    help: ["--dry-run  print what the pass would mark, destroy, fail or time out, and change nothing"],
    run: reapCommand,
  },
};

/** Commands that judge the configuration themselves, so they run even when it is not valid. */
const RAW_COMMANDS: Record<string, Command & { run: (env: Record<string, string | undefined>, io: CliOutput) => Promise<number> }> = {
  doctor: {
    usage: "doctor",
    summary: "check everything this configuration uses, and say how to fix what is wrong",
    help: [
      "Checks, printing each result as it comes: the configuration, the store, the GitHub App (GET /app",
      "with its JWT), where GitHub sends webhooks and whether recent deliveries failed, that bubblewrap",
      "can build the agent's sandbox here, and each enabled backend (ssh hosts, gce, k8s permissions).",
      "Read-only. Exit 0 when nothing failed (warnings allowed), 1 otherwise.",
    ],
    run: async (env, io) => {
      // Imported on use: the checks load cloud clients only for the backends that are on.
      const { runDoctor, formatDoctorLine, formatDoctorSummary } = await import("./doctor/run-doctor.js");
      const report = await runDoctor(env, { onCheck: (c) => io.out(formatDoctorLine(c)), onSection: (s) => io.out(`${s}…`) });
      io.out(formatDoctorSummary(report));
      return report.ok ? 0 : 1;
    },
  },
};

const ALL: Record<string, Command> = { ...STORE_COMMANDS, ...RAW_COMMANDS };
const isHelp = (arg: string | undefined) => arg === "--help" || arg === "-h";

/** The version in package.json (two folders up from src/cli/ and from dist/cli/ alike). */
export function version(): string {
  return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

export function usage(): string {
  const width = Math.max(...Object.values(ALL).map((c) => c.usage.length));
  return [
    "usage: agent-work <command> [options]",
    "",
    "commands:",
    ...Object.values(ALL).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    `  ${"help [command]".padEnd(width)}  this text, or one command's options (also: <command> --help)`,
    `  ${"--version".padEnd(width)}  the version`,
    "",
    "The configuration comes from the environment and ./.env, as for the controller (DATA_DIR or",
    "DATABASE_URL, APP_ID, SSH_HOSTS_FILE, GCE_*, K8S_*): run it where the controller runs.",
    "Exit codes: 0 done, 1 failed or not found, 2 bad usage or configuration.",
  ].join("\n");
}

function commandHelp(name: string, command: Command): string {
  return [
    `usage: agent-work ${command.usage}`,
    "",
    `${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.`,
    "",
    ...command.help.map((l) => `  ${l}`),
  ].join("\n");
}

/** Runs one command line; returns the exit code (0 ok, 1 failed, 2 bad usage or configuration). */
export async function runCli(argv: string[], env: Record<string, string | undefined>, io: CliOutput): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V" || name === "version") {
    io.out(`agent-work ${version()}`);
    return 0;
  }
  if (name === "help" || isHelp(name)) {
    const about = rest[0] === undefined ? undefined : ALL[rest[0]];
    if (rest[0] !== undefined && !about) {
      io.err(`unknown command: ${rest[0]}`);
      io.err(usage());
      return 2;
    }
    io.out(about ? commandHelp(rest[0]!, about) : usage());
    return 0;
  }
  const command = name === undefined ? undefined : ALL[name];
  if (!command || name === undefined) {
    io.err(name === undefined ? "no command given" : `unknown command: ${name}`);
    io.err(usage());
    return 2;
  }
  // Asked for help anywhere on the line: the help, and nothing run.
  if (rest.some(isHelp)) {
    io.out(commandHelp(name, command));
    return 0;
  }
  const raw = RAW_COMMANDS[name];
  if (raw) return raw.run(env, io);
  const storeCommand = STORE_COMMANDS[name]!;
  const loaded = loadControllerConfig(env);
  if (!loaded.ok) {
    io.err("the configuration in the environment is not valid:");
    for (const e of loaded.errors) io.err(`  - ${e}`);
    return 2;
  }
  const found = await findStore(loaded.config);
  if (!found.ok) {
    io.err(`${name}: ${found.problem}`);
    return 2;
  }
  const { context, close } = await openCliContext(loaded.config, io);
  try {
    return await storeCommand.run(context, rest);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.err(`${name}: ${(err as Error).message}`);
      io.err(`usage: agent-work ${command.usage} (agent-work ${name} --help says more)`);
      return 2;
    }
    io.err(`${name} failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await close();
  }
}
