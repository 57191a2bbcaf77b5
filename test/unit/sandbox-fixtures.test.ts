/**
 * test/fixtures/ is bound read-only into the agent's sandbox (the fake agents run from there), and
 * in a checkout under /tmp it lies where the snooping fake agent (FAKE_AGENT:snoop) hunts for
 * secrets: a fixture that spells out what it hunts for is "found" as a leak, and only in such a
 * checkout (issue 15). This holds wherever the checkout lies, so the next such fixture fails here
 * rather than in someone's /tmp clone.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
/** What fake-agent.mjs's snoop() hunts for: a GitHub installation token and a PEM private key. */
const NEEDLES = [
  ["ghs", "_"],
  ["PRIVATE KEY", "-----"],
].map((parts) => parts.join(""));

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

describe("the fixtures bound into the agent's sandbox", () => {
  it("hold nothing the snooping fake agent hunts for, so it finds no leak in a checkout under /tmp", () => {
    const files = filesUnder(FIXTURES);
    expect(files.map((f) => path.basename(f))).toContain("fake-agent.mjs");
    const holding = files.filter((f) => NEEDLES.some((n) => readFileSync(f, "latin1").includes(n)));
    expect(holding.map((f) => path.relative(FIXTURES, f))).toEqual([]);
  });
});
