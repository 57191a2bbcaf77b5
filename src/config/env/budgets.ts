import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fieldBuilders, optionalText, type ControllerEnvVar, type EnvField, type VarName } from "./field-builders.js";

/** What jobs may spend, and the prices their cost is reckoned with. */
export const BUDGETS_VARS = [
  {
    name: "BUDGET_JOB_USD",
    secret: false,
    default: "1.00",
    description: "Most one job may cost, in USD; it also caps the job's minutes at its machine's rate. Repositories may set lower.",
  },
  {
    name: "BUDGET_REPO_MONTHLY_USD",
    secret: false,
    default: "20.00",
    description: "Most one repository may spend a calendar month (UTC), in USD. Repositories may set lower.",
  },
  {
    name: "BUDGET_GLOBAL_HOURLY_USD",
    secret: false,
    default: "5.00",
    description: "Most the whole controller may spend in one clock hour (UTC), in USD, across all repositories.",
  },
  {
    name: "PRICES_FILE",
    secret: false,
    description:
      "A GCE price table refreshed from the Cloud Billing Catalog (npm run prices:refresh -- <file>), used instead of the bundled one; unset uses the bundled table.",
  },
] as const satisfies readonly ControllerEnvVar[];

const { usd } = fieldBuilders(BUDGETS_VARS);

export const BUDGETS_FIELDS = {
  PRICES_FILE: optionalText((v) =>
    existsSync(resolve(v)) ? null : "no such file; write one with npm run prices:refresh -- <file>, or unset it to use the bundled prices",
  ),
  BUDGET_JOB_USD: usd("BUDGET_JOB_USD"),
  BUDGET_REPO_MONTHLY_USD: usd("BUDGET_REPO_MONTHLY_USD"),
  BUDGET_GLOBAL_HOURLY_USD: usd("BUDGET_GLOBAL_HOURLY_USD"),
} satisfies Record<VarName<typeof BUDGETS_VARS>, EnvField>;
