import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCommand } from "../../src/commands/parse-command.js";
import { renderHelp } from "../../src/commands/render-help.js";

describe("reading /agent commands from a comment", () => {
  it.each([
    ["/agent run", { verb: "run", instructions: "" }],
    ["/AGENT Run fix the typo", { verb: "run", instructions: "fix the typo" }],
    [
      "/agent run --max-minutes 5 --machine large please hurry\nand add a test",
      { verb: "run", flags: { maxMinutes: 5, machine: "large" }, instructions: "please hurry\nand add a test" },
    ],
    ["/agent run --backend=local -- --not-a-flag", { verb: "run", flags: { backend: "local" }, instructions: "--not-a-flag" }],
    ["/agent ask why does the parser crash?", { verb: "ask", instructions: "why does the parser crash?" }],
    ["/agent ask --model m1 what is\nthis for?", { verb: "ask", flags: { model: "m1" }, instructions: "what is\nthis for?" }],
    ["/agent stop", { verb: "stop" }],
    ["/agent cancel", { verb: "stop" }],
    ["/agent retry", { verb: "retry" }],
    ["/agent status", { verb: "status" }],
    ["/agent cost", { verb: "cost" }],
    ["/agent help", { verb: "help" }],
    ["/agent", { verb: "help" }],
    ["   /agent status  \nthanks", { verb: "status" }],
  ])("reads %j", (body, expected) => {
    expect(parseCommand(body)).toMatchObject({ ok: true, ...expected });
  });

  it.each([
    "please /agent run",
    "> /agent run",
    "```\n/agent run\n```",
    "    /agent run",
    "\t/agent run",
    "\n/agent run",
    "/agents run",
    "/agentrun",
    "hello\n/agent run",
  ])("ignores %j", (body) => {
    expect(parseCommand(body)).toBeNull();
  });

  it("wants a question after /agent ask", () => {
    expect(parseCommand("/agent ask")).toMatchObject({ ok: false, error: "bad_flag", message: "`/agent ask` needs a question after it" });
    expect(parseCommand("/agent ask --model m1")).toMatchObject({ ok: false, error: "bad_flag" });
  });

  it("suggests the nearest command for an unknown verb", () => {
    expect(parseCommand("/agent stpo")).toMatchObject({ ok: false, error: "unknown_verb", word: "stpo", suggestion: "stop" });
    expect(parseCommand("/agent frobnicate")).toMatchObject({ ok: false, error: "unknown_verb", word: "frobnicate" });
    expect((parseCommand("/agent frobnicate") as { suggestion?: string }).suggestion).toBeUndefined();
  });

  it.each([
    ["/agent run --bogus x", /unknown flag `--bogus`/],
    ["/agent stop --max-minutes 3", /`stop` takes no flags/],
    ["/agent run --max-minutes soon", /whole number/],
    ["/agent run --max-minutes", /needs a value/],
    ["/agent run --machine $(rm -rf /)", /takes a name/],
  ])("refuses a bad flag in %j", (body, message) => {
    const parsed = parseCommand(body);
    expect(parsed).toMatchObject({ ok: false, error: "bad_flag" });
    expect((parsed as { message: string }).message).toMatch(message);
  });

  it("never throws, and any comment is exactly one command or none", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `/agent ${s}`),
          fc.string().map((s) => `/agent run ${s}`),
        ),
        (body) => {
          const parsed = parseCommand(body);
          if (parsed === null) return;
          expect(typeof parsed.ok).toBe("boolean");
          if (parsed.ok) expect(["run", "stop", "retry", "status", "cost", "help"]).toContain(parsed.verb);
        },
      ),
    );
  });

  it("never triggers on anything quoted or inside a code block", () => {
    const wrap = fc.constantFrom(
      (s: string) => `> ${s}`,
      (s: string) => "```\n" + s + "\n```",
      (s: string) => `    ${s}`,
      (s: string) => `~~~\n${s}\n~~~`,
      (s: string) => `text first\n${s}`,
    );
    fc.assert(
      fc.property(wrap, fc.string(), (w, s) => {
        expect(parseCommand(w(`/agent run ${s}`))).toBeNull();
      }),
    );
  });
});

describe("the help text", () => {
  it("is the same in the README as in the bot's reply", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const help = renderHelp({ requiredPermission: "write", triggerLabel: "agent-work" });
    const between = /<!-- help:start -->\n([\s\S]*?)\n<!-- help:end -->/.exec(readme)?.[1];
    expect(between, "README.md needs the help between <!-- help:start --> and <!-- help:end -->; run `npm run readme-help`").toBe(help);
  });
});
