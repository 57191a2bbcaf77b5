import { z } from "zod";

/** One row of the variable table: what `.env.example` and `--help` say about a variable. */
export interface ControllerEnvVar {
  name: string;
  /** One line, for `.env.example` and `--help`. */
  description: string;
  /** As written in the environment; absent when the variable has no default. */
  default?: string;
  secret: boolean;
}

/** The names in one area's rows of the table. */
export type VarName<Vars extends readonly ControllerEnvVar[]> = Vars[number]["name"];

/** One variable's schema: its raw text (absent or blank: unset) to its value, or an issue saying what would be valid. */
export type EnvField = z.ZodType<unknown, string | undefined>;

/** What each field of an area parses to. */
export type FieldValues<Fields extends Record<string, EnvField>> = { [K in keyof Fields]: z.output<Fields[K]> };

/** An empty value (`PORT=` in a .env file) means "use the default", like an absent one. */
export function blankToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

export function commaList(raw: string | undefined): string[] {
  const value = blankToUndefined(raw);
  if (value === undefined) return [];
  return [
    ...new Set(
      value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== ""),
    ),
  ];
}

export function optionalText(check?: (value: string) => string | null) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = blankToUndefined(raw);
      if (value === undefined) return undefined;
      const problem = check?.(value);
      if (problem) {
        ctx.addIssue({ code: "custom", message: problem });
        return z.NEVER;
      }
      return value;
    });
}

/**
 * The builders of fields that fall back to a default, bound to one area's rows of the table: the
 * default is written once, in the row `.env.example` is checked against, and a builder can only
 * name a variable of its own area.
 */
export function fieldBuilders<Vars extends readonly ControllerEnvVar[]>(vars: Vars) {
  type Name = VarName<Vars>;

  function defaultOf(name: Name): string {
    const value = vars.find((v) => v.name === name)?.default;
    if (value === undefined) throw new Error(`${name} has no default`);
    return value;
  }

  function integer(name: Name, min: number, max: number, why = "") {
    const fallback = Number(defaultOf(name));
    return z
      .string()
      .optional()
      .transform((raw, ctx) => {
        const value = blankToUndefined(raw);
        if (value === undefined) return fallback;
        const parsed = /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
        if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
          ctx.addIssue({ code: "custom", message: `expected a whole number from ${min} to ${max}${why} (default ${fallback})` });
          return z.NEVER;
        }
        return parsed;
      });
  }

  function usd(name: Name) {
    const fallback = Number(defaultOf(name));
    return z
      .string()
      .optional()
      .transform((raw, ctx) => {
        const value = blankToUndefined(raw);
        if (value === undefined) return fallback;
        const parsed = /^\d{1,7}(\.\d{1,6})?$/.test(value) ? Number(value) : Number.NaN;
        if (!Number.isFinite(parsed)) {
          ctx.addIssue({ code: "custom", message: `expected an amount of US dollars such as 2.50 (default ${defaultOf(name)})` });
          return z.NEVER;
        }
        return parsed;
      });
  }

  function oneOf<const T extends readonly string[]>(name: Name, values: T) {
    const fallback = defaultOf(name) as T[number];
    return z
      .string()
      .optional()
      .transform((raw, ctx): T[number] => {
        const value = blankToUndefined(raw);
        if (value === undefined) return fallback;
        if (!(values as readonly string[]).includes(value)) {
          ctx.addIssue({ code: "custom", message: `expected one of ${values.join(", ")} (default ${fallback})` });
          return z.NEVER;
        }
        return value as T[number];
      });
  }

  function text(name: Name, check?: (value: string) => string | null) {
    const fallback = defaultOf(name);
    return z
      .string()
      .optional()
      .transform((raw, ctx) => {
        const value = blankToUndefined(raw);
        if (value === undefined) return fallback;
        const problem = check?.(value);
        if (problem) {
          ctx.addIssue({ code: "custom", message: problem });
          return z.NEVER;
        }
        return value;
      });
  }

  function bool(name: Name) {
    const fallback = defaultOf(name) === "true";
    return z
      .string()
      .optional()
      .transform((raw, ctx) => {
        const value = blankToUndefined(raw)?.toLowerCase();
        if (value === undefined) return fallback;
        if (value === "true" || value === "false") return value === "true";
        ctx.addIssue({ code: "custom", message: `expected true or false (default ${fallback})` });
        return z.NEVER;
      });
  }

  return { defaultOf, integer, usd, oneOf, text, bool };
}
