import { AGENT_PRESETS } from "../../agents/presets.js";
import { fieldBuilders, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** How jobs start and run: the trigger, who may start one, how many at once and for how long; and missed deliveries looked for again. */
export const JOBS_VARS = [
  { name: "TRIGGER_LABEL", secret: false, default: "agent-work", description: "The issue label that starts a job." },
  { name: "MAX_CONCURRENT_JOBS", secret: false, default: "2", description: "Jobs that may run at the same time on this controller." },
  {
    name: "DEFAULT_AGENT",
    secret: false,
    default: "claude-code",
    description: "Agent for repositories that do not choose one: opencode, claude-code, aider, codex or command.",
  },
  {
    name: "DEFAULT_MAX_MINUTES",
    secret: false,
    default: "30",
    description: "Minutes a job may run when the repository does not say; at most MAX_MINUTES_CEILING.",
  },
  {
    name: "MAX_MINUTES_CEILING",
    secret: false,
    default: "55",
    description: "The most minutes any repository may ask for; installation tokens live one hour, so keep it at 55 or below.",
  },
  {
    name: "LEASE_SECONDS",
    secret: false,
    default: "60",
    description: "How long a controller's claim on a job lasts without a heartbeat before another may take it over.",
  },
  {
    name: "STATUS_UPDATE_INTERVAL_SECONDS",
    secret: false,
    default: "30",
    description: "Least seconds between two updates of the check run (and of the status comment) while a job runs; each update is a GitHub API call.",
  },
  { name: "SCHEDULER_INTERVAL_MS", secret: false, default: "1000", description: "Milliseconds between scheduler passes that claim queued jobs." },
  {
    name: "REQUIRED_PERMISSION",
    secret: false,
    default: "write",
    description: "Least repository permission a person needs to start or stop work: write, maintain or admin.",
  },
  {
    name: "REDELIVERY_INTERVAL_SECONDS",
    secret: false,
    default: "300",
    description:
      "Seconds between passes that ask GitHub to redeliver webhook deliveries this controller missed (one pass also runs at start); 0 turns the recovery off.",
  },
  {
    name: "LABEL_SCAN_MAX_AGE_DAYS",
    secret: false,
    default: "30",
    description: "Oldest label, in days, that the scan for labelled issues without a job (labels whose delivery GitHub no longer lists) turns into a job.",
  },
] as const satisfies readonly ControllerEnvVar[];

/** Installation tokens live one hour; a job must finish (and push) inside that. */
const TOKEN_LIFETIME_MINUTES = 60;
const SAFE_MAX_MINUTES = 55;

const { integer, oneOf, text } = fieldBuilders(JOBS_VARS);

export const JOBS_FIELDS = {
  TRIGGER_LABEL: text("TRIGGER_LABEL", (v) => (v.length > 50 ? "expected a GitHub label name of at most 50 characters" : null)),
  MAX_CONCURRENT_JOBS: integer("MAX_CONCURRENT_JOBS", 1, 1000),
  DEFAULT_AGENT: oneOf("DEFAULT_AGENT", AGENT_PRESETS),
  DEFAULT_MAX_MINUTES: integer("DEFAULT_MAX_MINUTES", 1, TOKEN_LIFETIME_MINUTES),
  // A job never outlives the worker token minted at its start (one hour), so tokens are never
  // refreshed: 55 minutes of agent leave the clone, the push and GCE's late maxRunDuration room.
  MAX_MINUTES_CEILING: integer(
    "MAX_MINUTES_CEILING",
    1,
    SAFE_MAX_MINUTES,
    ", because the installation token a job pushes with lives one hour and clone and push need the rest",
  ),
  LEASE_SECONDS: integer("LEASE_SECONDS", 5, 3600),
  STATUS_UPDATE_INTERVAL_SECONDS: integer("STATUS_UPDATE_INTERVAL_SECONDS", 1, 3600),
  SCHEDULER_INTERVAL_MS: integer("SCHEDULER_INTERVAL_MS", 50, 600_000),
  REQUIRED_PERMISSION: oneOf("REQUIRED_PERMISSION", ["write", "maintain", "admin"] as const),
  REDELIVERY_INTERVAL_SECONDS: integer("REDELIVERY_INTERVAL_SECONDS", 0, 86_400),
  LABEL_SCAN_MAX_AGE_DAYS: integer("LABEL_SCAN_MAX_AGE_DAYS", 1, 3650),
} satisfies Record<VarName<typeof JOBS_VARS>, EnvField>;

type JobsValues = Partial<FieldValues<typeof JOBS_FIELDS>>;

/** A job's default length fits under the ceiling every repository is held to. */
export function checkJobMinutes(values: JobsValues, ctx: RuleContext): void {
  const { fail } = ctx;
  if (values.DEFAULT_MAX_MINUTES !== undefined && values.MAX_MINUTES_CEILING !== undefined && values.DEFAULT_MAX_MINUTES > values.MAX_MINUTES_CEILING) {
    fail("DEFAULT_MAX_MINUTES", `must not exceed MAX_MINUTES_CEILING (${values.MAX_MINUTES_CEILING})`);
  }
}
