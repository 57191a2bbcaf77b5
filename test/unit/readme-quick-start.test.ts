/**
 * The README's quick start, as a newcomer reads it from the top (issue 15): the two commands, what
 * they do, the offline demo, then going live with GitHub — where the webhook must point, which is
 * where the code sends it — and what to do when a label does nothing. `.ci/run` runs the README's
 * test command exactly, so the command a newcomer types is the one CI proves.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { WEBHOOK_PATH } from "../../src/setup/serve-setup-page.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };

/** The text under a heading, up to the next heading of the same or a higher level. */
function section(heading: string): string {
  const start = readme.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README.md has no heading ${heading}`);
  const level = /^#+/.exec(heading)![0].length;
  const rest = readme.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^#{1,${level}} `, "m"));
  return end < 0 ? rest : rest.slice(0, end);
}

describe("the README's quick start", () => {
  it("reads from the top: two commands, what happens, the demo, then going live and troubleshooting", () => {
    const headings = readme.split("\n").filter((l) => /^#{2,3} /.test(l));
    expect(headings.slice(0, 5)).toEqual([
      "## Two commands",
      "### What happens",
      "### See it work, offline: `npm run demo`",
      "### Go live with GitHub",
      '### Troubleshooting: "I added the label and nothing happened"',
    ]);
    const commands = /```sh\n([\s\S]*?)```/.exec(section("## Two commands"))?.[1];
    expect(
      commands
        ?.trim()
        .split("\n")
        .map((l) => l.replace(/\s+#.*$/, "")),
    ).toEqual(["npm install && npm start", "npm ci && npm test"]);
  });

  it("runs what it names: npm run demo and npm test are scripts, and .ci/run runs the README's test command", () => {
    expect(section("### See it work, offline: `npm run demo`")).toContain("npm install && npm run demo");
    expect(pkg.scripts.demo).toBeDefined();
    expect(pkg.scripts.test).toMatch(/^node scripts\/check-test-prereqs\.mjs && /);
    const ci = readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
    expect(ci.trimEnd().split("\n").at(-1)).toBe("npm ci && npm test");
  });

  it("says where GitHub must send webhooks, as the setup page registers it: PUBLIC_URL + the webhook path, or a smee.io channel", () => {
    const live = section("### Go live with GitHub");
    expect(WEBHOOK_PATH).toBe("/api/github/webhooks");
    expect(live).toContain(`\`${WEBHOOK_PATH}\``);
    expect(live).toContain(`set \`PUBLIC_URL=https://agent-work.example.com\``);
    expect(live).toContain(`\`https://agent-work.example.com${WEBHOOK_PATH}\``);
    expect(live).toMatch(/smee\.io[\s\S]*`WEBHOOK_PROXY_URL`/);
  });

  it('answers "I added the label and nothing happened" with doctor and the app\'s Recent Deliveries', () => {
    const help = section('### Troubleshooting: "I added the label and nothing happened"');
    expect(help).toContain("node dist/cli/main.js doctor");
    expect(help).toContain("**Recent Deliveries**");
    expect(help).toMatch(/401: a signature mismatch/);
  });
});
