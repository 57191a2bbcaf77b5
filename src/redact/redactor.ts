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

/**
 * Lines longer than this are cut before any pattern runs, so the work and the output of one call
 * are bounded whatever arrives (a 40 MB unsigned webhook body, an agent printing a minified
 * bundle). 64 KiB is above anything GitHub accepts as one comment or check summary.
 */
export const DEFAULT_MAX_LINE_CHARS = 65_536;

/**
 * Every pattern below runs in time linear in its input: a regex engine that backtracks (V8's does)
 * goes quadratic when a match can start at many places and each start scans the same long run
 * before it fails. The rules that rule that out, pattern by pattern:
 * - each pattern starts with a literal (`://`, `eyJ`, `gh?_`, …), so only those places start a scan;
 * - a run that may fail after it is bounded (`{1,4096}`) or its class excludes the character that
 *   starts the next candidate (`:` ends a password run, so two `x-access-token:` never share one);
 * - where a run of the pattern's own characters could hold a start at every position (`eyJeyJeyJ…`),
 *   a lookbehind lets a match start only where such a run begins;
 * - an unbounded run is only ever the pattern's last element, where nothing after it can fail.
 * test/unit/redactor-linear.test.ts feeds adversarial inputs at n and 10n characters to check it.
 */
const PATTERNS: readonly { name: string; regex: RegExp; replace: string }[] = [
  {
    // The OAuth sign-in's one-time `code` (and its `state`) in a logged callback URL.
    name: "oauth-code",
    regex: /([?&](?:code|state)=)[^&\s"']+/g,
    replace: `$1${REDACTED}`,
  },
  {
    // PEM private keys, including a block cut off before its END line (a truncated log tail).
    // The lazy run tries a bounded END at each position and otherwise takes the rest of the text,
    // so one BEGIN costs one pass and the match consumes what it scanned.
    name: "pem-private-key",
    regex: /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|[\s\S]*$)/g,
    replace: REDACTED,
  },
  {
    // GitHub tokens: ghp_ (classic PAT), gho_ (OAuth), ghu_ (user-to-server), ghs_ (installation),
    // ghr_ (refresh). One pattern covers the 36-character body and the `ghs_<appid>_<JWT>` form:
    // it runs over letters, digits, `_` and `-`, then over every `.segment` that follows. No left
    // word boundary on purpose: a token glued to other text is still a token. Nothing after the
    // first 20 characters can fail, so a start costs at most 24 characters before it matches.
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
    // Only where a run of base64url characters begins: in `eyJeyJeyJ…` every third position would
    // otherwise scan the whole run for a dot that never comes.
    name: "jwt",
    regex: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g,
    replace: REDACTED,
  },
  {
    // A token in a git remote without a scheme. The token never holds `:`, so the run stops at
    // the next `x-access-token:` and two candidates never scan the same characters.
    name: "x-access-token-url",
    regex: /x-access-token:[^@\s/:]{1,4096}@/gi,
    replace: `x-access-token:${REDACTED}@`,
  },
  {
    // Any other `scheme://user:password@host`: keep the scheme and the user, drop the password.
    // Anchored on `://` rather than on the scheme: a scheme-shaped run (`aaaa…`) would be a start
    // at every position. The user part stops at `:`, the password at `/`, so each `://` owns its
    // own stretch of text.
    name: "url-credentials",
    regex: /(:\/\/[^\s:@/]{1,256}:)[^\s@/]{1,4096}@/g,
    replace: `$1${REDACTED}@`,
  },
  {
    // Authorization headers in any spelling a log or a dump might show: `Authorization: token x`,
    // `"authorization":"Bearer x"`, `authorization=Basic x`. The blanks are bounded: two unbounded
    // `\s*` side by side split a long run of spaces every possible way.
    name: "authorization-header",
    regex: /(authorization["']?\s{0,8}[:=]\s{0,8}["']?\s{0,8}(?:token|bearer|basic)\s{1,8})[^\s"',;]+/gi,
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

/**
 * Characters tokens, keys and encoded secrets are made of: a cut drops the run of them it falls in,
 * so it never leaves the first half of a token behind for no pattern to recognise.
 * (A loop, not `/[…]+$/`: that regex would rescan the run from every position before it.)
 */
function isSecretish(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    "+/=_.~%\\-".includes(String.fromCharCode(code))
  );
}

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

export interface RedactorOptions {
  /** Lines longer than this are cut (with a note) before redaction; DEFAULT_MAX_LINE_CHARS. */
  maxLineChars?: number;
}

export class Redactor {
  private readonly secrets = new Set<string>();
  private knownSecrets: RegExp | null = null;
  readonly maxLineChars: number;

  constructor(secrets: string[] = [], options: RedactorOptions = {}) {
    this.maxLineChars = options.maxLineChars ?? DEFAULT_MAX_LINE_CHARS;
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
    let result = text.length > this.maxLineChars ? this.cutLongLines(text) : text;
    const known = this.knownSecretsRegex();
    if (known) result = result.replace(known, REDACTED);
    for (const pattern of PATTERNS) {
      pattern.regex.lastIndex = 0;
      result = result.replace(pattern.regex, pattern.replace);
    }
    return result;
  }

  /**
   * Cuts every line longer than the cap, so the patterns never see more than the cap per line. The
   * cut backs off over the run of token characters it falls in and over a beginning of a known
   * secret, so no recognisable half of a secret stays behind unredacted.
   */
  private cutLongLines(text: string): string {
    const max = this.maxLineChars;
    const out: string[] = [];
    let start = 0;
    while (start <= text.length) {
      const newline = text.indexOf("\n", start);
      const end = newline === -1 ? text.length : newline;
      if (end - start <= max) {
        out.push(text.slice(start, end));
      } else {
        let keep = start + max;
        while (keep > start && isSecretish(text.charCodeAt(keep - 1))) keep--;
        keep -= this.knownSecretPrefixEndingAt(text, start, keep);
        out.push(`${text.slice(start, keep)}…[cut: ${end - keep} characters]`);
      }
      if (newline === -1) break;
      start = newline + 1;
    }
    return out.join("\n");
  }

  /** The length of the longest beginning of a known secret that `text[from, to)` ends with. */
  private knownSecretPrefixEndingAt(text: string, from: number, to: number): number {
    if (to <= from) return 0;
    const last = text.charCodeAt(to - 1);
    let longest = 0;
    for (const secret of this.secrets) {
      for (let k = Math.min(secret.length - 1, to - from); k > longest; k--) {
        // Most lengths are ruled out by one character; only candidates pay for a full compare.
        if (secret.charCodeAt(k - 1) === last && text.startsWith(secret.slice(0, k), to - k)) {
          longest = k;
          break;
        }
      }
    }
    return longest;
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
