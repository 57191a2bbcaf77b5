import { fieldBuilders, optionalText, type ControllerEnvVar, type EnvField, type FieldValues, type VarName } from "./field-builders.js";
import type { RuleContext } from "./rule-context.js";

/** The controller's own process: its servers, logs, store and public address. */
export const SERVER_VARS = [
  {
    name: "PORT",
    secret: false,
    default: "3000",
    description: "Port the webhook server and job pages listen on (/metrics is not served there: see METRICS_PORT).",
  },
  { name: "HOST", secret: false, default: "0.0.0.0", description: "Address the webhook server and job pages bind to." },
  {
    name: "REQUEST_TIMEOUT_SECONDS",
    secret: false,
    default: "15",
    description:
      "Seconds a client may take to send a whole request, body included, before the server answers 408 and closes the connection (GitHub sends a delivery in well under its own 10 s).",
  },
  {
    name: "WEBHOOK_THREAD",
    secret: false,
    default: "true",
    description:
      "Receive webhooks on a thread of their own (true or false): the HTTP server, the signature check and the delivery's write run there, so a burst of job work never delays GitHub's answer; job pages and /healthz are passed on to the main thread. false serves everything from the main thread.",
  },
  {
    name: "METRICS_HOST",
    secret: false,
    default: "127.0.0.1",
    description:
      "Address the Prometheus /metrics server binds to; loopback by default, so only this machine can scrape it. Set METRICS_TOKEN before binding it anywhere else.",
  },
  {
    name: "METRICS_PORT",
    secret: false,
    default: "9464",
    description: "Port of the Prometheus /metrics server, which serves nothing else; 0 turns it off. It must differ from PORT.",
  },
  {
    name: "METRICS_TOKEN",
    secret: true,
    description:
      "Bearer token Prometheus must send (Authorization: Bearer <token>) to read /metrics; at least 16 characters, no spaces. Unset: anyone who can reach METRICS_HOST:METRICS_PORT may read it.",
  },
  {
    name: "METRICS_REPO_LABELS",
    secret: false,
    default: "false",
    description:
      "Label cost metrics with repository names (owner/repo): true or false. Off by default, because names of private repositories would reach whoever reads the metrics.",
  },
  { name: "LOG_LEVEL", secret: false, default: "info", description: "Log level: trace, debug, info, warn, error or fatal." },
  { name: "NODE_ENV", secret: false, description: "Set to production in production: then a missing APP_ID is an error instead of the setup page." },
  {
    name: "DATA_DIR",
    secret: false,
    default: "./data",
    description: "Folder for the embedded database and job logs; relative paths are resolved against the working directory.",
  },
  {
    name: "DATABASE_URL",
    secret: true,
    description:
      "PostgreSQL connection URL (postgres://user:password@host:5432/database) to keep the store there instead of SQLite in DATA_DIR; required to run more than one controller replica.",
  },
  {
    name: "PUBLIC_URL",
    secret: false,
    description:
      "Public base URL of this controller, for the job page and the check run's Details link; the setup page registers <PUBLIC_URL>/api/github/webhooks as the app's webhook URL.",
  },
  {
    name: "WEBHOOK_PROXY_URL",
    secret: true,
    description:
      "A smee.io channel (https://smee.io/...) that GitHub delivers webhooks to and the controller forwards from, for a machine GitHub cannot reach; the setup page creates one when PUBLIC_URL is unset.",
  },
] as const satisfies readonly ControllerEnvVar[];

/** The metrics server: its own address, loopback by default, optionally behind a bearer token. */
export interface MetricsConfig {
  host: string;
  port: number;
  /** Scrapers must send `Authorization: Bearer <token>`; a secret. Unset: none is asked for. */
  token?: string;
  /** Label costs with `owner/repo`; off by default, since repository names may be private. */
  repoLabels: boolean;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);
}

const { integer, oneOf, text, bool } = fieldBuilders(SERVER_VARS);

export const SERVER_FIELDS = {
  PORT: integer("PORT", 1, 65535),
  HOST: text("HOST", (v) => (/\s/.test(v) ? "expected an address to bind to, such as 0.0.0.0, 127.0.0.1 or ::" : null)),
  REQUEST_TIMEOUT_SECONDS: integer("REQUEST_TIMEOUT_SECONDS", 1, 300),
  WEBHOOK_THREAD: bool("WEBHOOK_THREAD"),
  METRICS_HOST: text("METRICS_HOST", (v) => (/\s/.test(v) ? "expected an address to bind to, such as 127.0.0.1, :: or 0.0.0.0" : null)),
  METRICS_PORT: integer("METRICS_PORT", 0, 65535, " (0 turns the metrics server off)"),
  // Sent in a header by every scrape: printable ASCII only, and long enough not to be guessed.
  METRICS_TOKEN: optionalText((v) =>
    /^[\x21-\x7e]{16,}$/.test(v) ? null : "expected at least 16 printable characters without spaces (for example `openssl rand -hex 32`)",
  ),
  METRICS_REPO_LABELS: bool("METRICS_REPO_LABELS"),
  LOG_LEVEL: oneOf("LOG_LEVEL", LOG_LEVELS),
  NODE_ENV: optionalText(),
  DATA_DIR: text("DATA_DIR"),
  DATABASE_URL: optionalText((v) => {
    try {
      const url = new URL(v);
      if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw new Error("scheme");
      return null;
    } catch {
      return "expected a PostgreSQL URL such as postgres://agent_work:password@db.example.com:5432/agent_work (unset keeps the embedded SQLite store in DATA_DIR)";
    }
  }),
  PUBLIC_URL: optionalText((v) => {
    try {
      const url = new URL(v);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme");
      if (url.username || url.password) return "expected a URL without credentials in it";
      if (url.search || url.hash) return "expected a base URL without ?query or #fragment, such as https://agent-work.example.com";
      return null;
    } catch {
      return "expected an http(s) URL such as https://agent-work.example.com";
    }
  }),
  WEBHOOK_PROXY_URL: optionalText((v) => {
    try {
      const url = new URL(v);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme");
      return url.pathname.length > 1 ? null : "expected a channel URL such as https://smee.io/AbCdEf123 (https://smee.io/new makes one)";
    } catch {
      return "expected a channel URL such as https://smee.io/AbCdEf123 (https://smee.io/new makes one)";
    }
  }),
} satisfies Record<VarName<typeof SERVER_VARS>, EnvField>;

type ServerValues = Partial<FieldValues<typeof SERVER_FIELDS>>;

/** The metrics server, unless METRICS_PORT=0 turns it off: never on the webhook port, and a warning when anyone may read it. */
export function resolveMetrics(values: ServerValues, ctx: RuleContext): MetricsConfig | undefined {
  const { warnings, fail } = ctx;
  // /metrics has a server of its own: the webhook port faces GitHub (often the internet), and the
  // metrics describe the whole controller.
  let metrics: MetricsConfig | undefined;
  if (values.METRICS_PORT !== undefined && values.METRICS_HOST !== undefined && values.METRICS_REPO_LABELS !== undefined) {
    if (values.METRICS_PORT === 0) {
      if (values.METRICS_TOKEN !== undefined) warnings.push("METRICS_TOKEN is set but METRICS_PORT=0 turns the metrics server off, so it is unused");
    } else if (values.PORT !== undefined && values.METRICS_PORT === values.PORT) {
      fail("METRICS_PORT", `the webhook server already listens on ${values.PORT} (PORT); choose another port for /metrics, or 0 to turn it off`);
    } else {
      metrics = { host: values.METRICS_HOST, port: values.METRICS_PORT, repoLabels: values.METRICS_REPO_LABELS };
      if (values.METRICS_TOKEN !== undefined) metrics.token = values.METRICS_TOKEN;
      else if (!isLoopback(values.METRICS_HOST)) {
        warnings.push(
          `METRICS_HOST=${values.METRICS_HOST} lets anyone who can reach port ${values.METRICS_PORT} read /metrics without a token; set METRICS_TOKEN (and the same bearer token in Prometheus' scrape config) or bind it to 127.0.0.1`,
        );
      }
    }
  }
  return metrics;
}
