/**
 * The controller's configuration, loaded once from an `env` argument (never `process.env` directly,
 * so tests pass their own). Each variable has its own zod schema; all of them are checked, then the
 * cross-field rules, and every problem comes back together, each naming the variable, the bad value
 * (masked when it is a secret) and what would be valid. `.env.example` lists exactly
 * `CONTROLLER_ENV_VARS` (a test checks it).
 *
 * The parts live in `env/`, one file per area (github-app, server, jobs, backends, sandbox, agent,
 * gce, ssh, cloudrun, k8s, job-pages, budgets), each holding its rows of the variable table, their
 * schemas and its cross-field rules; `load-controller-config.ts` runs them in order. This file is
 * what the rest of the code imports.
 */
export type { ControllerConfig, LoadControllerConfigResult } from "./env/controller-config.js";
export type { MetricsConfig } from "./env/server.js";
export type { SignInConfig } from "./env/job-pages.js";
export type { GceConfig } from "./env/gce.js";
export type { K8sConfig } from "./env/k8s.js";
export type { CloudRunConfig } from "./env/cloudrun.js";
export type { ControllerEnvVar } from "./env/field-builders.js";
export { CONTROLLER_ENV_VARS } from "./env/controller-env-vars.js";
export { loadControllerConfig } from "./env/load-controller-config.js";
export { secretValues } from "./env/secret-values.js";
export { describeControllerConfig } from "./env/describe-controller-config.js";
