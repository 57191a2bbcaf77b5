import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { blankToUndefined, fieldBuilders, optionalText, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** The GitHub App: its id, its credentials, and the GitHub it talks to. */
export const GITHUB_APP_VARS = [
  { name: "APP_ID", secret: false, description: "The GitHub App's id. Leave unset to serve the setup page that registers the app from app.yml." },
  {
    name: "PRIVATE_KEY",
    secret: true,
    description: "The GitHub App's private key (PEM); newlines may be written as \\n. Set this or PRIVATE_KEY_PATH, not both.",
  },
  { name: "PRIVATE_KEY_PATH", secret: false, description: "Path of a file holding the GitHub App's private key (PEM), instead of PRIVATE_KEY." },
  { name: "WEBHOOK_SECRET", secret: true, description: "The GitHub App's webhook secret; required with APP_ID; use at least 32 random characters." },
  { name: "GHE_HOST", secret: false, description: "GitHub Enterprise Server host name (e.g. github.example.com); unset for github.com." },
  { name: "GHE_PROTOCOL", secret: false, default: "https", description: "Protocol for GHE_HOST: https or http." },
] as const satisfies readonly ControllerEnvVar[];

const PEM_PRIVATE_KEY = /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[\s\S]+-----END ([A-Z]+ )?PRIVATE KEY-----/;
const PEM_ADVICE =
  "expected a PEM private key from -----BEGIN RSA PRIVATE KEY----- to -----END RSA PRIVATE KEY----- (the .pem file GitHub gave you; newlines may be written as \\n)";

/** `.env` files and container platforms often flatten a PEM onto one line with literal `\n`. */
function unescapePem(value: string): string {
  return value.replace(/\\r\\n|\\n/g, "\n").trim();
}

const { oneOf } = fieldBuilders(GITHUB_APP_VARS);

export const GITHUB_APP_FIELDS = {
  APP_ID: optionalText((v) => (/^[1-9]\d{0,15}$/.test(v) ? null : "expected a positive whole number: the App ID on the GitHub App's settings page")),
  PRIVATE_KEY: optionalText((v) => (PEM_PRIVATE_KEY.test(unescapePem(v)) ? null : PEM_ADVICE)),
  PRIVATE_KEY_PATH: optionalText(),
  WEBHOOK_SECRET: optionalText(),
  GHE_HOST: optionalText((v) =>
    /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$/.test(v)
      ? null
      : "expected a host name such as github.example.com, without https:// or a path (set GHE_PROTOCOL for http)",
  ),
  GHE_PROTOCOL: oneOf("GHE_PROTOCOL", ["https", "http"] as const),
} satisfies Record<VarName<typeof GITHUB_APP_VARS>, EnvField>;

type GithubAppValues = Partial<FieldValues<typeof GITHUB_APP_FIELDS>>;

/**
 * The App's id and private key (inline or from a file, not both), and what APP_ID requires:
 * a webhook secret and a key, or in production the id itself.
 */
export function resolveGithubApp(
  values: GithubAppValues,
  production: boolean,
  ctx: RuleContext,
): { appId: number | undefined; privateKey: string | undefined } {
  const { env, errors, warnings, fail } = ctx;
  // Private key: inline or from a file, not both.
  let privateKey = values.PRIVATE_KEY === undefined ? undefined : unescapePem(values.PRIVATE_KEY);
  if (values.PRIVATE_KEY !== undefined && values.PRIVATE_KEY_PATH !== undefined) {
    fail("PRIVATE_KEY_PATH", "set either PRIVATE_KEY or PRIVATE_KEY_PATH, not both");
  } else if (values.PRIVATE_KEY_PATH !== undefined) {
    const path = resolve(values.PRIVATE_KEY_PATH);
    try {
      const contents = readFileSync(path, "utf8");
      if (PEM_PRIVATE_KEY.test(contents)) privateKey = contents.trim();
      else fail("PRIVATE_KEY_PATH", `${path} does not hold a PEM private key; ${PEM_ADVICE}`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
      fail("PRIVATE_KEY_PATH", `cannot read ${path} (${code}); expected a readable file holding the GitHub App's private key`);
    }
  }

  const appId = values.APP_ID === undefined ? undefined : Number(values.APP_ID);
  if (appId !== undefined) {
    if (values.WEBHOOK_SECRET === undefined) {
      fail("WEBHOOK_SECRET", "required when APP_ID is set: every webhook delivery is verified with it (the secret in the GitHub App's settings)");
    }
    // Raw presence, not parsed values: a malformed key already has its own error.
    if (blankToUndefined(env.PRIVATE_KEY) === undefined && blankToUndefined(env.PRIVATE_KEY_PATH) === undefined) {
      fail("PRIVATE_KEY", "PRIVATE_KEY or PRIVATE_KEY_PATH is required when APP_ID is set: the app signs its requests to GitHub with it");
    }
  } else if (production && !errors.some((e) => e.startsWith("APP_ID"))) {
    fail("APP_ID", "required when NODE_ENV=production; without it only the setup page that registers the app would run");
  }
  if (values.WEBHOOK_SECRET !== undefined && values.WEBHOOK_SECRET.length < 32) {
    warnings.push(
      `WEBHOOK_SECRET is ${values.WEBHOOK_SECRET.length} characters long; use at least 32 random characters (for example \`openssl rand -hex 32\`) and set the same value in the GitHub App's settings`,
    );
  }
  return { appId, privateKey };
}

/** A key or a webhook secret without APP_ID is unused: the setup page runs instead. */
export function warnUnusedAppCredentials(values: GithubAppValues, app: { appId: number | undefined; privateKey: string | undefined }, ctx: RuleContext): void {
  if (app.appId === undefined && (app.privateKey !== undefined || values.WEBHOOK_SECRET !== undefined)) {
    ctx.warnings.push("PRIVATE_KEY / WEBHOOK_SECRET are set but APP_ID is not, so they are unused and the setup page runs instead");
  }
}
