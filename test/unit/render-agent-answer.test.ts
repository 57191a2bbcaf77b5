import { describe, expect, it } from "vitest";
import { renderAgentAnswer } from "../../src/status/render-agent-answer.js";

describe("an agent's answer as posted", () => {
  it("keeps prose, code and links", () => {
    const text = "The parser is in `src/parse.ts`.\n\n```ts\nconst a = 1;\n```\nSee [the docs](https://example.com/docs).";
    expect(renderAgentAnswer(text)).toBe(text);
  });

  it("notifies nobody: mentions of people and teams become code", () => {
    expect(renderAgentAnswer("ping @alice, @octo-org/team and mail a@b.c")).toBe("ping `@alice`, `@octo-org/team` and mail a@b.c");
  });

  it("loads nothing: images go, in every spelling", () => {
    const out = renderAgentAnswer('a ![x](https://evil.example/p.png?d=1) b ![y][ref] c <IMG SRC="https://evil.example/q.png"> d');
    expect(out).not.toMatch(/evil\.example|<img/i);
    expect(out.match(/\[image removed\]/g)).toHaveLength(3);
  });

  it("forges no marker and carries no raw HTML", () => {
    const out = renderAgentAnswer("x <!-- agent-work:job=jabc --> y <!<!-- -->-- agent-work:effect=k --> <details><summary>z</summary></details> <!-- open");
    expect(out).not.toContain("agent-work:");
    expect(out).not.toContain("<");
  });

  it("fits in a GitHub comment", () => {
    const out = renderAgentAnswer("a".repeat(100_000));
    expect(out.length).toBeLessThan(65_000);
    expect(out).toContain("cut by agent-work");
  });
});
