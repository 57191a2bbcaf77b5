import { AGENT_FIELDS, AGENT_VARS } from "./agent.js";
import { BACKENDS_FIELDS, BACKENDS_VARS } from "./backends.js";
import { BUDGETS_FIELDS, BUDGETS_VARS } from "./budgets.js";
import { CLOUDRUN_FIELDS, CLOUDRUN_VARS } from "./cloudrun.js";
import type { ControllerEnvVar, EnvField, FieldValues, VarName } from "./field-builders.js";
import { GCE_FIELDS, GCE_VARS } from "./gce.js";
import { GITHUB_APP_FIELDS, GITHUB_APP_VARS } from "./github-app.js";
import { JOB_PAGES_FIELDS, JOB_PAGES_VARS } from "./job-pages.js";
import { JOBS_FIELDS, JOBS_VARS } from "./jobs.js";
import { K8S_FIELDS, K8S_VARS } from "./k8s.js";
import { SANDBOX_FIELDS, SANDBOX_VARS } from "./sandbox.js";
import { SERVER_FIELDS, SERVER_VARS } from "./server.js";
import { SSH_FIELDS, SSH_VARS } from "./ssh.js";

/**
 * The variable table: every variable the controller reads, one area after another (the order of
 * `.env.example`'s sections, roughly). Each area's rows and its schemas sit side by side in its own
 * file and are checked there to name the same variables; `.env.example` lists exactly these (a
 * test checks it).
 */
const TABLE = [
  ...GITHUB_APP_VARS,
  ...SERVER_VARS,
  ...JOBS_VARS,
  ...BACKENDS_VARS,
  ...SANDBOX_VARS,
  ...AGENT_VARS,
  ...GCE_VARS,
  ...SSH_VARS,
  ...CLOUDRUN_VARS,
  ...K8S_VARS,
  ...JOB_PAGES_VARS,
  ...BUDGETS_VARS,
] as const;

export const CONTROLLER_ENV_VARS: readonly ControllerEnvVar[] = TABLE;

/**
 * Every variable's schema, area by area as in the table: the order their problems are reported in.
 * An area left out here, but not from the table, fails to compile.
 */
export const FIELDS = {
  ...GITHUB_APP_FIELDS,
  ...SERVER_FIELDS,
  ...JOBS_FIELDS,
  ...BACKENDS_FIELDS,
  ...SANDBOX_FIELDS,
  ...AGENT_FIELDS,
  ...GCE_FIELDS,
  ...SSH_FIELDS,
  ...CLOUDRUN_FIELDS,
  ...K8S_FIELDS,
  ...JOB_PAGES_FIELDS,
  ...BUDGETS_FIELDS,
} satisfies Record<VarName<typeof TABLE>, EnvField>;

export type FieldName = keyof typeof FIELDS;
export type Fields = FieldValues<typeof FIELDS>;
