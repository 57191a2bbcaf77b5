import { fieldBuilders, optionalText, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** The job pages: signing in with GitHub, the session cookie, the log kept for a page and its live stream. */
export const JOB_PAGES_VARS = [
  {
    name: "GITHUB_CLIENT_ID",
    secret: false,
    description: "The GitHub App's OAuth client id, for signing in to the job pages (Probot's setup page writes it to .env).",
  },
  {
    name: "GITHUB_CLIENT_SECRET",
    secret: true,
    description: "The GitHub App's OAuth client secret; required with GITHUB_CLIENT_ID (Probot's setup page writes it to .env).",
  },
  {
    name: "SESSION_SECRET",
    secret: true,
    description: "Key that signs the job pages' sign-in cookies; at least 32 random characters. Changing it signs everyone out.",
  },
  { name: "LOG_RETENTION_DAYS", secret: false, default: "14", description: "Days each job's full log is kept for its page; older lines are deleted." },
  {
    name: "LOG_STREAM_RECHECK_SECONDS",
    secret: false,
    default: "120",
    description:
      "Seconds between checks, while a job page streams its live log, that the viewer may still read the repository (asked of GitHub with their token); a viewer whose access was removed stops receiving lines.",
  },
  {
    name: "GITHUB_OAUTH_URL",
    secret: false,
    description: "Base URL of GitHub's sign-in pages (/login/oauth/authorize); set it only to point sign-in at a fake GitHub in tests.",
  },
  {
    name: "GITHUB_OAUTH_API_URL",
    secret: false,
    description: "REST API base URL called with a signed-in person's token (GET /user, GET /repos/...); set it only for tests.",
  },
] as const satisfies readonly ControllerEnvVar[];

/** The GitHub App's OAuth client (Probot's setup page writes both values to .env). */
export interface SignInConfig {
  clientId: string;
  /** A secret. */
  clientSecret: string;
  /** Base of GitHub's web sign-in (`/login/oauth/authorize`, `/login/oauth/access_token`), no trailing slash. */
  webUrl: string;
  /** REST API base called with a signed-in person's token (`GET /user`, `GET /repos/{owner}/{repo}`). */
  apiUrl: string;
}

function baseUrlProblem(v: string): string | null {
  try {
    const url = new URL(v);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme");
    if (url.username || url.password || url.search || url.hash) return "expected a base URL without credentials, ?query or #fragment";
    return null;
  } catch {
    return "expected an http(s) URL such as https://github.example.com";
  }
}

const { integer } = fieldBuilders(JOB_PAGES_VARS);

export const JOB_PAGES_FIELDS = {
  GITHUB_CLIENT_ID: optionalText((v) =>
    /^[A-Za-z0-9._-]{1,100}$/.test(v) ? null : "expected the Client ID from the GitHub App's settings page, such as Iv23liAbCdEf0123456789",
  ),
  GITHUB_CLIENT_SECRET: optionalText(),
  SESSION_SECRET: optionalText((v) =>
    v.length >= 32 ? null : `expected at least 32 random characters (for example \`openssl rand -hex 32\`); a short key lets someone forge a sign-in`,
  ),
  LOG_RETENTION_DAYS: integer("LOG_RETENTION_DAYS", 1, 3650),
  LOG_STREAM_RECHECK_SECONDS: integer("LOG_STREAM_RECHECK_SECONDS", 1, 600, " (a stream lasts ten minutes at most, and its reconnect checks again)"),
  GITHUB_OAUTH_URL: optionalText(baseUrlProblem),
  GITHUB_OAUTH_API_URL: optionalText(baseUrlProblem),
} satisfies Record<VarName<typeof JOB_PAGES_VARS>, EnvField>;

/** With the GitHub the App talks to (GHE_HOST), whose sign-in pages are the default, and PUBLIC_URL, whose job pages want a sign-in. */
type SignInValues = Partial<FieldValues<typeof JOB_PAGES_FIELDS>> & { GHE_HOST?: string; GHE_PROTOCOL?: "https" | "http"; PUBLIC_URL?: string };

/** Sign-in to the job pages when the OAuth client id and secret are both set; one without the other is a problem. */
export function resolveSignIn(values: SignInValues, ctx: RuleContext): SignInConfig | undefined {
  const { warnings, fail } = ctx;
  // Sign-in to the job pages: the client id and secret come as a pair.
  let signIn: SignInConfig | undefined;
  if (values.GITHUB_CLIENT_ID !== undefined && values.GITHUB_CLIENT_SECRET === undefined) {
    fail(
      "GITHUB_CLIENT_SECRET",
      "required with GITHUB_CLIENT_ID: the sign-in code is exchanged with both (Client secrets in the GitHub App's settings; Probot's setup page writes it)",
    );
  } else if (values.GITHUB_CLIENT_ID === undefined && values.GITHUB_CLIENT_SECRET !== undefined) {
    fail("GITHUB_CLIENT_ID", "required with GITHUB_CLIENT_SECRET (the Client ID on the GitHub App's settings page)");
  } else if (values.GITHUB_CLIENT_ID !== undefined && values.GITHUB_CLIENT_SECRET !== undefined) {
    const protocol = values.GHE_PROTOCOL ?? "https";
    const host = values.GHE_HOST;
    signIn = {
      clientId: values.GITHUB_CLIENT_ID,
      clientSecret: values.GITHUB_CLIENT_SECRET,
      webUrl: (values.GITHUB_OAUTH_URL ?? (host ? `${protocol}://${host}` : "https://github.com")).replace(/\/+$/, ""),
      apiUrl: (values.GITHUB_OAUTH_API_URL ?? (host ? `${protocol}://${host}/api/v3` : "https://api.github.com")).replace(/\/+$/, ""),
    };
  } else if (values.PUBLIC_URL !== undefined) {
    warnings.push(
      "PUBLIC_URL is set but GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET are not: the check run's Details link leads to a job page nobody can sign in to; copy both from the GitHub App's settings (Probot's setup page writes them to .env)",
    );
  }
  return signIn;
}
