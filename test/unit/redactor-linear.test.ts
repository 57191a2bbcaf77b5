import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_LINE_CHARS, REDACTED, Redactor } from "../../src/redact/redactor.js";
import { createLogger } from "../../src/redact/redacting-logger.js";

/**
 * The redactor runs over every log line, and a log line can carry what a stranger sent (issue 14:
 * 100 KB of `a` took 31 s, because one pattern backtracked quadratically). These tests show the
 * work grows linearly with the input: the same text at n and 20n characters must cost about 20×
 * (measured quiet: 7–9× for 10n, the fixed cost of a call included), and the bound below (100×) is
 * far from what a quadratic pattern costs (400×). The cost is CPU time, the best of several
 * batches; on a loaded machine the process's parallel GC threads can spin, which counts as its CPU
 * time and grows with what a call allocates, so the bound leaves room for that.
 */

const SMALL = 2_000;
const LARGE = 40_000;
/** Linear work gives ~20× (less, with a call's fixed cost); quadratic gives ~400×. */
const MAX_RATIO = 100;
/** Ten lines against one: linear gives ~10×. */
const MAX_LINES_RATIO = 30;

function cpuMsPerCall(redactor: Redactor, text: string): number {
  let best = Infinity;
  for (let batch = 0; batch < 5; batch++) {
    const start = process.cpuUsage();
    let calls = 0;
    let spentUs = 0;
    do {
      redactor.redact(text);
      calls++;
      const used = process.cpuUsage(start);
      spentUs = used.user + used.system;
    } while (spentUs < 8_000);
    best = Math.min(best, spentUs / 1000 / calls);
  }
  return best;
}

/** `prefix` then `unit` repeated to `length` characters. */
function build(prefix: string, unit: string, length: number): string {
  return prefix + unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

/**
 * How much longer 10n characters take than n. Measured again when over the bound: another
 * process's burst can spoil one measurement, while a quadratic pattern is over it every time.
 */
function growth(redactor: Redactor, prefix: string, unit: string): number {
  // Each size's best over every attempt: process CPU time also counts the process's other threads
  // (GC, the test runner's), which a loaded machine makes busier in one measurement than another.
  const large = build(prefix, unit, LARGE);
  const small = build(prefix, unit, SMALL);
  let bestLarge = Infinity;
  let bestSmall = Infinity;
  for (let attempt = 0; attempt < 6 && !(bestLarge / bestSmall < MAX_RATIO); attempt++) {
    bestLarge = Math.min(bestLarge, cpuMsPerCall(redactor, large));
    bestSmall = Math.min(bestSmall, cpuMsPerCall(redactor, small));
  }
  return bestLarge / bestSmall;
}

/** Pieces of every pattern the redactor knows, and the characters that end or extend their runs. */
const FRAGMENTS = [
  "a",
  "Z",
  "0",
  "-",
  "_",
  ".",
  ":",
  "/",
  "@",
  "%",
  "=",
  "&",
  "?",
  " ",
  "\n",
  "\t",
  '"',
  "'",
  "\\",
  "://",
  "https://",
  "x-access-token:",
  "authorization",
  "Authorization: ",
  '"authorization":"',
  "Bearer ",
  "token ",
  "basic",
  "eyJ",
  "eyJhbGciOiJSUzI1NiJ9",
  "ghp_",
  "ghs_1234_",
  "github_pat_",
  "sk-",
  "sk-ant-",
  "AIza",
  "ya29.",
  "-----BEGIN ",
  "RSA ",
  "PRIVATE KEY-----",
  "-----END ",
  "?code=",
  "&state=",
  "user:",
  "some-secret",
];

/** A short piece of text built from those fragments; repeated, it is an adversarial input. */
const adversarialUnit = fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 1, maxLength: 8 }).map((parts) => parts.join(""));

describe("the redactor's work grows linearly with its input", () => {
  // With the line cap off, the patterns themselves are what is measured.
  const uncapped = new Redactor(["some-secret-value-0001"], { maxLineChars: Infinity });

  it.each([
    ["a run of one URL-ish character", "", "a"],
    ["scheme-shaped text without ://", "", "ab+c.d-"],
    ["JWT starts that never find their dot", "", "eyJ"],
    ["x-access-token: repeated without an @", "", "x-access-token:"],
    ["://user: repeated without an @", "", "://a:"],
    ["a password run that never reaches @", "https://user:", "p:"],
    ["an Authorization header followed by blanks", "authorization:", " "],
    ["dots and letters", "", "a."],
    ["PEM ends without a beginning", "", "-----END "],
    ["a PEM beginning that never ends", "-----BEGIN RSA PRIVATE KEY-----", "MIIEow\n"],
    ["PEM headers that never say PRIVATE KEY", "", "-----BEGIN AAAA"],
    ["almost a GitHub token, again and again", "", "ghp_abcdefghij"],
    ["almost the known secret, again and again", "", "some-secret-value-000"],
  ])("%s", (_name, prefix, unit) => {
    expect(growth(uncapped, prefix, unit)).toBeLessThan(MAX_RATIO);
  });

  it("for any text built from pieces of its patterns", () => {
    fc.assert(
      fc.property(adversarialUnit, (unit) => {
        expect(growth(uncapped, "", unit)).toBeLessThan(MAX_RATIO);
      }),
      { numRuns: 25 },
    );
  });
});

describe("the line cap", () => {
  it("cuts a 1 MB line before redaction, so ten of them cost about ten times one", () => {
    const redactor = new Redactor();
    const line = build("https://user:", "eyJx-access-token:a", 1_000_000);
    const once = redactor.redact(line);
    expect(once.length).toBeLessThan(DEFAULT_MAX_LINE_CHARS + 100);
    expect(once).toMatch(/…\[cut: \d+ characters\]$/);
    const ten = Array.from({ length: 10 }, () => line).join("\n");
    const ratio = cpuMsPerCall(redactor, ten) / cpuMsPerCall(redactor, line);
    expect(ratio).toBeLessThan(MAX_LINES_RATIO);
    expect(redactor.redact(ten).split("\n")).toHaveLength(10);
  });

  it("leaves shorter lines as they are", () => {
    const text = `${"word ".repeat(2000)}\nshort line`;
    expect(new Redactor([], { maxLineChars: 20_000 }).redact(text)).toBe(text);
  });

  it("never leaves a piece of a token or a known secret that the cut went through", () => {
    const secret = "opaque secret with spaces 0123456789";
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.constantFrom(`ghs_${"Ab3".repeat(12)}`, secret, `sk-ant-${"x9".repeat(20)}`), (offset, value) => {
        const redactor = new Redactor([secret], { maxLineChars: 100 });
        // The cut (at 100) falls `offset` characters into the value, or past its end.
        const line = `${"w ".repeat(50).slice(0, 99 - offset)} ${value} and more text after it ${"z".repeat(100)}`;
        const output = redactor.redact(line);
        expect(output).toContain("…[cut: ");
        const kept = output.slice(0, output.indexOf("…[cut: "));
        expect(kept).not.toContain(value);
        // Not even its beginning, beyond what anyone could guess (`ghs_`, `sk-`).
        for (let k = 4; k < value.length; k++) expect(kept.endsWith(value.slice(0, k))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("still redacts what lies before the cut", () => {
    const token = `ghs_${"a".repeat(36)}`;
    const output = new Redactor([], { maxLineChars: 200 }).redact(`${token} ${"x ".repeat(500)}`);
    expect(output.startsWith(`${REDACTED} x`)).toBe(true);
    expect(output).not.toContain(token);
  });
});

describe("a log line longer than the cap", () => {
  it("is written as one JSON line that says it was cut, with its level and no secret", () => {
    const chunks: string[] = [];
    const destination = { write: (chunk: string) => chunks.push(chunk) } as unknown as NodeJS.WritableStream;
    const token = `ghs_${"Q".repeat(36)}`;
    const log = createLogger({ level: "info", redactor: new Redactor([], { maxLineChars: 1000 }), destination });
    log.warn({ body: `${token} ${"a".repeat(5000)}` }, "big");
    log.info("small");
    const lines = chunks.join("").trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    const cut = JSON.parse(lines[0]!);
    expect(cut).toMatchObject({ level: 40, msg: expect.stringMatching(/^log line of \d+ characters cut$/) });
    expect(cut.cut).toContain("…[cut: ");
    expect(cut.cut.length).toBeLessThan(1100);
    expect(lines[0]).not.toContain(token);
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 30, msg: "small" });
  });
});
