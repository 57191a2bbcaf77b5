import { z } from "zod";
import { describeType, show } from "./describe-value.js";
import { setting } from "./setting.js";
import { AVAILABLE_BACKENDS, type RepoBackend, type RepoConfigLimits, type SizeConfig } from "./types.js";

const PLANNED_BACKENDS: readonly string[] = [];
const MAX_BRANCH_PREFIX = 100;

/** The keys that shape the job: its minutes, branch, pull request, backend and hosts, sizes, budget and priority. */
export function jobKeys(limits: RepoConfigLimits) {
  const ceiling = limits.maxMinutesCeiling;
  return {
    max_minutes: setting((value, ctx): number => {
      if (value === undefined || value === null) return Math.min(limits.defaultMaxMinutes, ceiling);
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
        ctx.addIssue({
          code: "custom",
          message: `${describeType(value)} is not a whole number of minutes; use 1 to ${ceiling}`,
        });
        return z.NEVER;
      }
      if (value > ceiling) {
        ctx.addIssue({
          code: "custom",
          message: `${value} is above this installation's ceiling of ${ceiling} minutes; use 1 to ${ceiling}`,
        });
        return z.NEVER;
      }
      return value;
    }),
    branch_prefix: setting((value, ctx): string => {
      if (value === undefined || value === null) return "agent/";
      const problem = branchPrefixProblem(value);
      if (problem) {
        ctx.addIssue({ code: "custom", message: `${describeType(value)} ${problem}` });
        return z.NEVER;
      }
      return value as string;
    }),
    draft: setting((value, ctx): boolean => {
      if (value === undefined || value === null) return true;
      if (typeof value !== "boolean") {
        ctx.addIssue({ code: "custom", message: `must be \`true\` or \`false\`, not ${describeType(value)}` });
        return z.NEVER;
      }
      return value;
    }),
    backend: setting((value, ctx): RepoBackend | undefined => {
      if (value === undefined || value === null) return undefined;
      if (typeof value === "string" && (AVAILABLE_BACKENDS as readonly string[]).includes(value)) {
        return value as RepoBackend;
      }
      const available = AVAILABLE_BACKENDS.map((b) => `\`${b}\``).join(", ");
      const planned = typeof value === "string" && (PLANNED_BACKENDS as readonly string[]).includes(value);
      ctx.addIssue({
        code: "custom",
        message: planned
          ? `${show(value)} is not available on this installation yet; available: ${available}`
          : `${describeType(value)} is not a backend; available: ${available}`,
      });
      return z.NEVER;
    }),
    sizes: setting((value, ctx): Record<string, SizeConfig> => {
      if (value === undefined || value === null) return {};
      if (typeof value !== "object" || Array.isArray(value)) {
        ctx.addIssue({
          code: "custom",
          message: `must map size names to settings, such as \`large: { machine: e2-standard-4, max_minutes: 45 }\`, not ${describeType(value)}`,
        });
        return z.NEVER;
      }
      const sizes: Record<string, SizeConfig> = {};
      for (const [name, spec] of Object.entries(value as Record<string, unknown>)) {
        if (!/^[a-z0-9][a-z0-9._-]{0,39}$/i.test(name)) {
          ctx.addIssue({ code: "custom", message: `size name ${show(name)} may only use letters, digits and \`. _ -\`` });
          continue;
        }
        if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
          ctx.addIssue({ code: "custom", message: `size ${show(name)} must be a mapping with \`machine\` and/or \`max_minutes\`` });
          continue;
        }
        const size: SizeConfig = {};
        for (const [k, v] of Object.entries(spec as Record<string, unknown>)) {
          if (k === "machine" && typeof v === "string" && /^[a-z0-9][a-z0-9-]{0,62}$/.test(v)) size.machine = v;
          else if (k === "max_minutes" && typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= limits.maxMinutesCeiling) size.maxMinutes = v;
          else {
            ctx.addIssue({
              code: "custom",
              message:
                k === "machine" || k === "max_minutes"
                  ? `size ${show(name)}: ${show(k)} has a bad value ${show(v)} (machine: a machine type such as \`e2-standard-4\`; max_minutes: 1 to ${limits.maxMinutesCeiling})`
                  : `size ${show(name)}: unknown setting ${show(k)}; a size takes \`machine\` and \`max_minutes\``,
            });
          }
        }
        sizes[name] = size;
      }
      return sizes;
    }),
    budget: setting((value, ctx): { jobUsd?: number; monthlyUsd?: number } => {
      if (value === undefined || value === null) return {};
      if (typeof value !== "object" || Array.isArray(value)) {
        ctx.addIssue({ code: "custom", message: `must be a mapping such as \`{ job_usd: 0.50, monthly_usd: 10 }\`, not ${describeType(value)}` });
        return z.NEVER;
      }
      const budget: { jobUsd?: number; monthlyUsd?: number } = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if ((k === "job_usd" || k === "monthly_usd") && typeof v === "number" && Number.isFinite(v) && v >= 0) {
          budget[k === "job_usd" ? "jobUsd" : "monthlyUsd"] = v;
        } else {
          ctx.addIssue({
            code: "custom",
            message:
              k === "job_usd" || k === "monthly_usd"
                ? `${show(k)} must be an amount of US dollars of 0 or more, not ${show(v)}`
                : `unknown setting ${show(k)}; a budget takes \`job_usd\` and \`monthly_usd\` (they can lower the controller's limits, never raise them)`,
          });
        }
      }
      return budget;
    }),
    ssh_labels: setting((value, ctx): string[] | undefined => {
      if (value === undefined || value === null) return undefined;
      if (!Array.isArray(value) || value.length === 0 || value.length > 20 || !value.every((l) => typeof l === "string" && /^[^\s,]{1,63}$/.test(l))) {
        ctx.addIssue({
          code: "custom",
          message: Array.isArray(value)
            ? `must list 1 to 20 ssh host labels such as \`[gpu]\` (no spaces or commas in a label)`
            : `must be a list of ssh host labels such as \`[gpu]\`, not ${describeType(value)}`,
        });
        return z.NEVER;
      }
      return [...new Set(value as string[])];
    }),
    priority: setting((value, ctx): number => {
      if (value === undefined || value === null) return 0;
      if (typeof value !== "number" || !Number.isInteger(value) || value < -10 || value > 10) {
        ctx.addIssue({
          code: "custom",
          message: `${describeType(value)} is not a whole number from -10 to 10 (higher runs sooner; default 0)`,
        });
        return z.NEVER;
      }
      return value;
    }),
  };
}

function branchPrefixProblem(value: unknown): string | null {
  if (typeof value !== "string" || value === "") return "is not a branch prefix; use text such as `agent/`";
  if (value.length > MAX_BRANCH_PREFIX) return `is longer than ${MAX_BRANCH_PREFIX} characters`;
  if (!/^[A-Za-z0-9._/-]+$/.test(value)) return "may only use letters, digits and `. _ / -`";
  if (value.startsWith("-") || value.startsWith("/")) return "must not start with `-` or `/`";
  if (value.includes("..")) return "must not contain `..`";
  // git check-ref-format: no empty path component, none starting with `.` or ending in `.lock`.
  if (value.includes("//")) return "must not contain `//`";
  const components = value.split("/");
  if (components.some((c) => c.startsWith("."))) return "must not have a path part starting with `.`";
  if (components.some((c) => c.endsWith(".lock"))) return "must not have a path part ending in `.lock`";
  return null;
}
