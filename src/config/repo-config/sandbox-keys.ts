import { z } from "zod";
import { describeType } from "./describe-value.js";
import { setting } from "./setting.js";
import type { RepoConfigLimits } from "./types.js";

/**
 * A pattern that names the controller's own machine or a metadata server by address (or as
 * localhost): a repository may not open those; the operator may (NETWORK_ALLOW_DEFAULT).
 */
function namesThisMachine(pattern: string): boolean {
  const host = pattern.replace(/:\d{1,5}$/, "").toLowerCase();
  return /^(127\.\d+\.\d+\.\d+|0\.0\.0\.0|169\.254\.\d+\.\d+)$/.test(host) || host === "localhost" || host.endsWith(".localhost");
}

/** A host name or `*.` pattern, with an optional port: what the egress proxy matches. */
export const HOST_PATTERN = /^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/;

/** Below these an agent cannot even start (node alone maps about 50 MB and runs 7 threads). */
const SANDBOX_FLOORS = { memory_mb: 64, max_processes: 16, max_disk_mb: 16 } as const;
/** The largest values any controller accepts for its ceilings (src/config/env/sandbox.ts). */
const SANDBOX_MAXIMA = { memory_mb: 1_048_576, max_processes: 65_536, max_disk_mb: 10_485_760 } as const;
const SANDBOX_UNITS = { memory_mb: "MB of memory", max_processes: "processes", max_disk_mb: "MB of disk" } as const;

/** The worker's own bounds (worker/lib/input.mjs): checked here too, so a bad file is refused before any worker. */
export const MAX_SETUP_COMMANDS = 20;
export const MAX_SETUP_COMMAND_LENGTH = 4000;
const DEFAULT_SETUP_MINUTES = 10;

/** A sandbox limit: a whole number from its floor to the controller's ceiling; unset means the ceiling. */
function sandboxLimit(key: keyof typeof SANDBOX_FLOORS, ceiling: number | undefined) {
  const floor = SANDBOX_FLOORS[key];
  const top = ceiling ?? SANDBOX_MAXIMA[key];
  return setting((value, ctx): number | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value) || value < floor) {
      ctx.addIssue({ code: "custom", message: `${describeType(value)} is not a whole number of ${SANDBOX_UNITS[key]} from ${floor} to ${top}` });
      return z.NEVER;
    }
    if (value > top) {
      ctx.addIssue({
        code: "custom",
        message: `${value} is above this installation's ceiling of ${top} ${SANDBOX_UNITS[key]}; use ${floor} to ${top}, or leave it out for the ceiling`,
      });
      return z.NEVER;
    }
    return value;
  });
}

/** The keys of the agent's sandbox: its network, its limits, fork pull requests, and the setup steps run in it. */
export function sandboxKeys(limits: RepoConfigLimits) {
  const ceiling = limits.maxMinutesCeiling;
  return {
    network: setting((value, ctx): "full" | "none" | "allowlist" | undefined => {
      // Unset: the controller's NETWORK_DEFAULT decides when the job runs.
      if (value === undefined || value === null) return undefined;
      if (value === "full" || value === "none" || value === "allowlist") return value;
      ctx.addIssue({
        code: "custom",
        message: `${describeType(value)} is not a network setting; use \`full\` (the agent reaches the internet, e.g. its model's API), \`allowlist\` (only the hosts in \`allow\`, through a proxy) or \`none\` (no network at all, the safer choice when the agent needs none)`,
      });
      return z.NEVER;
    }),
    allow: setting((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      const bad = !Array.isArray(value) ? [value] : value.filter((h) => typeof h !== "string" || !HOST_PATTERN.test(h));
      const inside = Array.isArray(value) ? value.filter((h) => typeof h === "string" && HOST_PATTERN.test(h) && namesThisMachine(h)) : [];
      if (bad.length === 0 && inside.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `\`allow\` may not name this machine or a link-local address (the controller's own port, a cloud metadata server): ${inside
            .map((h) => JSON.stringify(h))
            .join(", ")
            .slice(0, 200)}; the controller's NETWORK_ALLOW_DEFAULT can`,
        });
        return z.NEVER;
      }
      if (bad.length > 0 || !Array.isArray(value)) {
        ctx.addIssue({
          code: "custom",
          message: `\`allow\` takes a list of host names or patterns such as \`api.example.com\`, \`*.npmjs.org\` or \`registry.example.com:8443\`; not ${bad
            .map((b) => JSON.stringify(b))
            .join(", ")
            .slice(0, 200)}`,
        });
        return z.NEVER;
      }
      return value as string[];
    }),
    memory_mb: sandboxLimit("memory_mb", limits.sandboxCeilings?.memoryMb),
    max_processes: sandboxLimit("max_processes", limits.sandboxCeilings?.maxProcesses),
    max_disk_mb: sandboxLimit("max_disk_mb", limits.sandboxCeilings?.maxDiskMb),
    fork_pull_requests: setting((value, ctx): "refuse" | "patch" => {
      if (value === undefined || value === null) return "refuse";
      if (value === "refuse" || value === "patch") return value;
      ctx.addIssue({
        code: "custom",
        message: `must be \`refuse\` (the default) or \`patch\` (run with no secret and post the change as a patch), not ${describeType(value)}`,
      });
      return z.NEVER;
    }),
    setup: setting((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      const example = 'for example `setup: ["npm ci", "pip install -r requirements.txt"]`';
      if (typeof value === "string") {
        ctx.addIssue({ code: "custom", message: `must be a list of shell commands, one per step, not a single text; ${example}` });
        return z.NEVER;
      }
      if (!Array.isArray(value) || value.length === 0) {
        ctx.addIssue({ code: "custom", message: `must be a non-empty list of shell commands, not ${describeType(value)}; ${example}` });
        return z.NEVER;
      }
      if (value.length > MAX_SETUP_COMMANDS) {
        ctx.addIssue({
          code: "custom",
          message: `lists ${value.length} commands; at most ${MAX_SETUP_COMMANDS} are allowed (join related ones with \`&&\`, or put them in a script)`,
        });
        return z.NEVER;
      }
      const bad = value.map((c, i) => ({ c, i })).filter(({ c }) => typeof c !== "string" || c.trim() === "" || c.includes("\0"));
      if (bad.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `step ${bad[0]!.i + 1} is ${describeType(bad[0]!.c)}, not a shell command; each step is one non-empty text`,
        });
        return z.NEVER;
      }
      const long = (value as string[]).findIndex((c) => c.length > MAX_SETUP_COMMAND_LENGTH);
      if (long >= 0) {
        ctx.addIssue({
          code: "custom",
          message: `step ${long + 1} is ${(value[long] as string).length} characters long; at most ${MAX_SETUP_COMMAND_LENGTH} are allowed (put a longer one in a script in the repository)`,
        });
        return z.NEVER;
      }
      return value as string[];
    }),
    setup_minutes: setting((value, ctx): number => {
      if (value === undefined || value === null) return Math.min(DEFAULT_SETUP_MINUTES, ceiling);
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > ceiling) {
        ctx.addIssue({
          code: "custom",
          message: `${describeType(value)} is not a whole number of minutes from 1 to ${ceiling} (setup counts in the job's \`max_minutes\`)`,
        });
        return z.NEVER;
      }
      return value;
    }),
  };
}
