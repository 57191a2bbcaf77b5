import { Writable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { REDACTED, Redactor } from "../../src/redact/redactor.js";
import { createLogger } from "../../src/redact/redacting-logger.js";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64URL = `${ALNUM}-_`;

function charsFrom(alphabet: string, minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(...alphabet.split("")), minLength, maxLength });
}

/** The 40-character form: a prefix and 36 letters and digits. */
const classicGithubToken = fc.tuple(fc.constantFrom("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), charsFrom(ALNUM, 36, 36)).map(([prefix, body]) => prefix + body);

/** The stateless form: `ghs_<appid>_<JWT>`, about 520 characters, with dots and `-_`. */
const statelessGithubToken = fc
  .tuple(fc.integer({ min: 1, max: 99_999_999 }), charsFrom(BASE64URL, 300, 380), charsFrom(BASE64URL, 86, 86))
  .map(([appId, payload, signature]) => {
    const header = Buffer.from(JSON.stringify({ alg: "RS256", typ: "JWT" })).toString("base64url");
    return `ghs_${appId}_${header}.${payload}.${signature}`;
  });

const githubToken = fc.oneof(classicGithubToken, statelessGithubToken);

/** Surrounding text of every kind: printable ASCII, any Unicode, and text built from token characters. */
const randomText = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "grapheme", maxLength: 40 }), charsFrom(`${BASE64URL}. :@/"'=\n`, 0, 60));

function survives(output: string, token: string): boolean {
  // Not just the whole token: no recognisable piece of it (start of body, end of signature).
  return output.includes(token) || output.includes(token.slice(4, 24)) || output.includes(token.slice(-20));
}

describe("Redactor", () => {
  it("never lets a GitHub token of either format survive, whatever text surrounds it", () => {
    const redactor = new Redactor();
    fc.assert(
      fc.property(randomText, githubToken, randomText, (before, token, after) => {
        const output = redactor.redact(before + token + after);
        expect(survives(output, token)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it("redacts several tokens in one text, including the ~520-character stateless form", () => {
    const redactor = new Redactor();
    fc.assert(
      fc.property(fc.array(fc.tuple(randomText, githubToken), { minLength: 1, maxLength: 5 }), (parts) => {
        const text = parts.map(([filler, token]) => filler + token).join(" ");
        const output = redactor.redact(text);
        for (const [, token] of parts) expect(survives(output, token)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps the text around a token", () => {
    const token = `ghs_${"a".repeat(36)}`;
    expect(new Redactor().redact(`token=${token}; next`)).toBe(`token=${REDACTED}; next`);
    const stateless = `ghs_123456_eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJl`;
    expect(new Redactor().redact(`pushed with ${stateless} done`)).toBe(`pushed with ${REDACTED} done`);
  });

  it("redacts fine-grained personal access tokens", () => {
    const pat = `github_pat_11ABCDEFG0123456789abc_${"x".repeat(59)}`;
    expect(new Redactor().redact(`GH_TOKEN=${pat}`)).toBe(`GH_TOKEN=${REDACTED}`);
  });

  it("redacts the credentials in a clone URL but keeps the host", () => {
    const redactor = new Redactor();
    expect(redactor.redact("fatal: https://x-access-token:opaque-secret-value@github.com/o/r.git")).toBe(
      `fatal: https://x-access-token:${REDACTED}@github.com/o/r.git`,
    );
    expect(redactor.redact("postgres://agent:hunter2hunter2@db.internal:5432/jobs")).toBe(`postgres://agent:${REDACTED}@db.internal:5432/jobs`);
  });

  it("redacts Anthropic, OpenAI and Google keys and OAuth tokens", () => {
    const redactor = new Redactor();
    const anthropic = `sk-ant-api03-${"Ab9_-".repeat(18)}`;
    const openai = `sk-proj-${"Zx81".repeat(12)}`;
    const openaiLegacy = `sk-${"q".repeat(48)}`;
    const google = `AIza${"SyD3".repeat(9)}Xy7`;
    const oauth = `ya29.a0AfH6SM${"Bx_-9".repeat(20)}`;
    const text = `ANTHROPIC_API_KEY=${anthropic}\nOPENAI_API_KEY="${openai}" ${openaiLegacy}\nkey=${google} auth ${oauth}`;
    const output = redactor.redact(text);
    for (const secret of [anthropic, openai, openaiLegacy, google, oauth]) expect(output).not.toContain(secret);
    expect(output).toContain("ANTHROPIC_API_KEY=");
  });

  it("leaves ordinary words that merely contain sk- alone", () => {
    const text = "see task-runner-configuration-for-the-cluster and disk-usage-monitoring-for-nodes";
    expect(new Redactor().redact(text)).toBe(text);
  });

  it("redacts PEM private key blocks, whole or cut off, raw or JSON-escaped", () => {
    const redactor = new Redactor();
    const body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
    const pem = `-----BEGIN RSA PRIVATE KEY-----\n${body}\n${body}\n-----END RSA PRIVATE KEY-----`;
    expect(redactor.redact(`key:\n${pem}\nafter`)).toBe(`key:\n${REDACTED}\nafter`);
    expect(redactor.redact(JSON.stringify({ key: pem }))).toBe(`{"key":"${REDACTED}"}`);
    expect(redactor.redact(`tail: -----BEGIN PRIVATE KEY-----\n${body}`)).toBe(`tail: ${REDACTED}`);
  });

  it("redacts Authorization headers however they are written", () => {
    const redactor = new Redactor();
    expect(redactor.redact("Authorization: token opaque123456")).toBe(`Authorization: token ${REDACTED}`);
    expect(redactor.redact('{"authorization":"Bearer abc.def.ghi"}')).toBe(`{"authorization":"Bearer ${REDACTED}"}`);
    expect(redactor.redact("authorization=Basic dXNlcjpwYXNz")).toBe(`authorization=Basic ${REDACTED}`);
  });

  it("redacts secrets added at runtime, in their JSON and URL spellings too", () => {
    const redactor = new Redactor(["initial-opaque-secret"]);
    redactor.add('minted "opaque" value/with+chars');
    const output = redactor.redact(
      [
        "initial-opaque-secret",
        'minted "opaque" value/with+chars',
        JSON.stringify('minted "opaque" value/with+chars'),
        encodeURIComponent('minted "opaque" value/with+chars'),
      ].join(" | "),
    );
    expect(output).not.toContain("initial-opaque-secret");
    expect(output).not.toContain("opaque");
  });

  it("ignores values shorter than 8 characters", () => {
    const redactor = new Redactor(["main", "true"]);
    redactor.add("1234567");
    expect(redactor.redact("main is true at 1234567")).toBe("main is true at 1234567");
  });

  it("replaces the longer of two overlapping secrets whole", () => {
    const redactor = new Redactor(["abcdefgh", "abcdefgh-and-more"]);
    expect(redactor.redact("x abcdefgh-and-more y")).toBe(`x ${REDACTED} y`);
  });

  it("is stable: redacting twice changes nothing more", () => {
    const redactor = new Redactor(["some-secret-value"]);
    fc.assert(
      fc.property(randomText, githubToken, (text, token) => {
        const once = redactor.redact(`${text} ${token} some-secret-value`);
        expect(redactor.redact(once)).toBe(once);
      }),
      { numRuns: 100 },
    );
  });
});

function captureStream(): { stream: Writable; output: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, output: () => chunks.join("") };
}

describe("createLogger", () => {
  it("writes no canary token, whether in the message, a field, a URL or a child logger", () => {
    fc.assert(
      fc.property(githubToken, (canary) => {
        const { stream, output } = captureStream();
        const logger = createLogger({ level: "trace", redactor: new Redactor(), destination: stream, name: "test" });
        logger.info({ token: canary, nested: { url: `https://x-access-token:${canary}@github.com/o/r` } }, `minted ${canary}`);
        logger.child({ jobId: "job-1" }).warn({ err: new Error(`push failed with ${canary}`) }, "push failed");
        const written = output();
        expect(written).toContain('"name":"test"');
        expect(written).toContain("push failed");
        expect(written).not.toContain(canary);
        expect(written).not.toContain(canary.slice(-20));
      }),
      { numRuns: 100 },
    );
  });

  it("hides a secret registered after the logger was made", () => {
    const { stream, output } = captureStream();
    const redactor = new Redactor();
    const logger = createLogger({ level: "info", redactor, destination: stream });
    redactor.add("opaque-model-key-0001");
    logger.info({ env: { MODEL_KEY: "opaque-model-key-0001" } }, "agent env ready");
    expect(output()).toContain("agent env ready");
    expect(output()).not.toContain("opaque-model-key-0001");
  });

  it("censors authorization headers by path, even when they have no known shape", () => {
    const { stream, output } = captureStream();
    const logger = createLogger({ level: "info", redactor: new Redactor(), destination: stream });
    logger.info({ headers: { authorization: "opaque1" } }, "a");
    logger.info({ request: { headers: { authorization: "opaque2", cookie: "session=opaque3" } } }, "b");
    logger.info({ err: { request: { headers: { authorization: "opaque4" } } } }, "c");
    const written = output();
    for (const value of ["opaque1", "opaque2", "opaque3", "opaque4"]) expect(written).not.toContain(value);
    expect(written.split("\n").filter(Boolean)).toHaveLength(3);
  });

  it("respects the level", () => {
    const { stream, output } = captureStream();
    const logger = createLogger({ level: "warn", redactor: new Redactor(), destination: stream });
    logger.info("quiet");
    logger.warn("loud");
    expect(output()).not.toContain("quiet");
    expect(output()).toContain("loud");
  });
});

describe("forgetting a revoked token", () => {
  it("stops tracking the exact value, while the token pattern still hides it", () => {
    const r = new Redactor();
    const secret = "not-a-token-but-secret-1234";
    r.add(secret);
    expect(r.redact(`x ${secret} y`)).toBe("x [REDACTED] y");
    r.forget(secret);
    expect(r.redact(`x ${secret} y`)).toBe(`x ${secret} y`);
    const token = `ghs_${"a".repeat(36)}`;
    r.add(token);
    r.forget(token);
    expect(r.redact(token)).not.toContain(token);
  });
});

describe("OAuth callbacks in request logs", () => {
  it("hides the one-time code and the state", () => {
    const r = new Redactor();
    expect(r.redact('"url":"/auth/callback?code=0123abcd&state=xyz"')).toBe('"url":"/auth/callback?code=[REDACTED]&state=[REDACTED]"');
  });
});
