/**
 * `npm start` compiles first (package.json "prestart"), but only what changed since the last
 * build: a second start with nothing changed writes nothing. Shown by effect — which files the
 * step rewrites — on a one-file project that uses this repository's own prestart script and build
 * configuration (compiling all of src/ here would only make the test slow, not truer).
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-prestart-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Modification time in ns of each output, so "rewritten" is a fact about the file, not a clock reading. */
function outputs(): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const f of ["dist/main.js", "dist/greet.js", "dist/.tsbuildinfo"]) out[f] = statSync(path.join(dir, f), { bigint: true }).mtimeNs;
  return out;
}

describe("npm start's build step", () => {
  it("compiles on the first start, writes nothing on a second start with nothing changed, and compiles again after an edit", { timeout: 120_000 }, async () => {
    writeFileSync(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "prestart-check", type: "module", private: true, scripts: { build: pkg.scripts.build, prestart: pkg.scripts.prestart } }),
    );
    for (const f of ["tsconfig.json", "tsconfig.build.json"]) cpSync(path.join(ROOT, f), path.join(dir, f));
    symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
    mkdirSync(path.join(dir, "src"));
    writeFileSync(path.join(dir, "src", "greet.ts"), "export const greet = (who: string): string => `hello ${who}`;\n");
    writeFileSync(path.join(dir, "src", "main.ts"), 'import { greet } from "./greet.js";\nconsole.log(greet("world"));\n');
    const prestart = () => execa("npm", ["run", "--silent", "prestart"], { cwd: dir });

    await prestart();
    const first = outputs();
    expect((await execa("node", ["dist/main.js"], { cwd: dir })).stdout).toBe("hello world");

    await prestart();
    expect(outputs()).toEqual(first);

    // Touched but unchanged is still nothing to do; a real edit recompiles.
    const main = path.join(dir, "src", "main.ts");
    writeFileSync(main, readFileSync(main));
    await prestart();
    expect(outputs()["dist/main.js"]).toBe(first["dist/main.js"]);
    writeFileSync(main, 'import { greet } from "./greet.js";\nconsole.log(greet("again"));\n');
    await prestart();
    expect(outputs()["dist/main.js"]).not.toBe(first["dist/main.js"]);
    expect((await execa("node", ["dist/main.js"], { cwd: dir })).stdout).toBe("hello again");
  });
});
