/**
 * The redactor that sits in front of every sink (logs, comments, check-run output): R14.
 *
 * Two nets, applied in this order:
 * 1. Exact values we know are secret (the private key, the webhook secret, the agent's model keys,
 *    every installation token as it is minted), including their JSON- and URL-escaped spellings,
 *    because a log line is JSON and a token often sits in a URL.
 * 2. Patterns for credentials we never saw: GitHub tokens of every prefix and both lengths, LLM and
 *    Google keys, PEM private keys, credentials in URLs and Authorization headers.
 *
 * Token formats that bite: besides the 40-character `ghs_…`, GitHub now issues stateless
 * `ghs_<appid>_<JWT>` tokens of ~520 characters with dots in them. A pattern that stops at 40
 * characters or at the first dot leaves most of such a token in the output.
 */
export const REDACTED = "[REDACTED]";

/** Shorter values are ignored: redacting "true" or "main" everywhere would ruin every log line. */
const MIN_SECRET_LENGTH = 8;

const PATTERNS: readonly { name: string; regex: RegExp; replace: string }[] = [
  {
    // The OAuth sign-in's one-time `code` (and its `state`) in a logged callback URL.
    name: "oauth-code",
    regex: /([?&](?:code|state)=)[^&\s"']+/g,
    replace: `$1${REDACTED}`,
  },
  {
    // PEM private keys, including a block cut off before its END line (a truncated log tail).
    name: "pem-private-key",
    regex: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*$)/g,
    replace: REDACTED,
  },
  {
    // GitHub tokens: ghp_ (classic PAT), gho_ (OAuth), ghu_ (user-to-server), ghs_ (installation),
    // ghr_ (refresh). One pattern covers the 36-character body and the `ghs_<appid>_<JWT>` form:
    // it runs over letters, digits, `_` and `-`, then over every `.segment` that follows. No left
    // word boundary on purpose: a token glued to other text is still a token.
    name: "github-token",
    regex: /gh[pousr]_[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*/g,
    replace: REDACTED,
  },
  {
    // Fine-grained personal access tokens: github_pat_<22>_<59>.
    name: "github-fine-grained-pat",
    regex: /github_pat_[A-Za-z0-9_]{20,}/g,
    replace: REDACTED,
  },
  {
    // JWTs (the app's own 10-minute JWT, OIDC tokens): three base64url segments, the first two JSON.
    name: "jwt",
    regex: /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g,
    replace: REDACTED,
  },
  {
    name: "x-access-token-url",
    regex: /x-access-token:[^@\s/]+@/gi,
    replace: `x-access-token:${REDACTED}@`,
  },
  {
    // Any other `scheme://user:password@host`: keep the user, drop the password.
    name: "url-credentials",
    regex: /([a-z][a-z0-9+.-]*:\/\/[^\s:@/]+:)[^\s@/]+@/gi,
    replace: `$1${REDACTED}@`,
  },
  {
    // Authorization headers in any spelling a log or a dump might show: `Authorization: token x`,
    // `"authorization":"Bearer x"`, `authorization=Basic x`.
    name: "authorization-header",
    regex: /(authorization["']?\s*[:=]\s*["']?\s*(?:token|bearer|basic)\s+)[^\s"',;]+/gi,
    replace: `$1${REDACTED}`,
  },
  {
    // Anthropic (sk-ant-…) and OpenAI (sk-…, sk-proj-…, sk-svcacct-…) keys. The left guard keeps
    // words such as "task-…" or "disk-…" intact.
    name: "sk-api-key",
    regex: /(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}/g,
    replace: REDACTED,
  },
  {
    name: "google-api-key",
    regex: /(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{30,}/g,
    replace: REDACTED,
  },
  {
    name: "google-oauth-access-token",
    regex: /(?<![A-Za-z0-9])ya29\.[0-9A-Za-z_-]{20,}/g,
    replace: REDACTED,
  },
];

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The spellings a secret takes in our sinks: as is, inside a JSON string, inside a URL. */
function spellings(secret: string): string[] {
  const forms = new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]);
  // A PEM key written with `\r\n` line ends, or as one line per body row, is matched by the
  // PEM pattern; the exact spellings above catch the rest.
  return [...forms].filter((form) => form.length >= MIN_SECRET_LENGTH);
}

export class Redactor {
  private readonly secrets = new Set<string>();
  private knownSecrets: RegExp | null = null;

  constructor(secrets: string[] = []) {
    for (const secret of secrets) this.add(secret);
  }

  /** Registers a value to hide from now on (e.g. each minted token). Short values are ignored. */
  add(secret: string): void {
    if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) return;
    let changed = false;
    for (const form of spellings(secret)) {
      if (!this.secrets.has(form)) {
        this.secrets.add(form);
        changed = true;
      }
    }
    if (changed) this.knownSecrets = null;
  }

  /**
   * Stops tracking a value that can no longer do harm (a revoked token), so a long-running
   * controller's list does not grow with every job. Token patterns still catch its format.
   */
  forget(secret: string): void {
    let changed = false;
    for (const form of spellings(secret)) changed = this.secrets.delete(form) || changed;
    if (changed) this.knownSecrets = null;
  }

  redact(text: string): string {
    let result = text;
    const known = this.knownSecretsRegex();
    if (known) result = result.replace(known, REDACTED);
    for (const pattern of PATTERNS) {
      pattern.regex.lastIndex = 0;
      result = result.replace(pattern.regex, pattern.replace);
    }
    return result;
  }

  private knownSecretsRegex(): RegExp | null {
    if (this.secrets.size === 0) return null;
    if (!this.knownSecrets) {
      // Longest first, so a secret that contains another is replaced whole.
      const alternatives = [...this.secrets].sort((a, b) => b.length - a.length).map(escapeRegExp);
      this.knownSecrets = new RegExp(alternatives.join("|"), "g");
    }
    return this.knownSecrets;
  }
}
