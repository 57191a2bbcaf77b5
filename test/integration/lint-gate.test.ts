/**
 * `npm test` runs the lint and the format check before the tests, and an error in either fails it: shown on a small tree that
 * carries this repository's package.json scripts, ESLint config and import check, with one source
 * file. Only `scripts/check-test-prereqs.mjs` is replaced (by one that passes): it installs system
 * packages, which is not what this test is about. CI runs the README's command (`.ci/run`).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const read = (rel: string) => readFileSync(path.join(repoRoot, rel), "utf8");

describe("npm test and the lint", () => {
  it("npm test runs the lint, then the tests; CI runs exactly the README's test command", () => {
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
    // The lint and the format check before the tests.
    expect(scripts.test).toMatch(/&& npm run lint && npm run format:check && vitest run$/);
    expect(scripts.lint).toContain("eslint .");
    expect(scripts.lint).toContain("scripts/check-imports.ts");
    const readmeCommand = /^(npm ci && npm test)\s+#/m.exec(read("README.md"))?.[1];
    expect(readmeCommand).toBe("npm ci && npm test");
    const ciLines = read(".ci/run")
      .split("\n")
      .filter((l) => l.trim() && !l.trim().startsWith("#"));
    expect(ciLines.at(-1)).toBe(readmeCommand);
  });

  describe("on a tree with a floating promise", () => {
    let root: string;
    beforeAll(() => {
      root = mkdtempSync(path.join(tmpdir(), "lint-gate-"));
      const pkg = JSON.parse(read("package.json")) as Record<string, unknown>;
      writeFileSync(path.join(root, "package.json"), JSON.stringify({ ...pkg, dependencies: {}, devDependencies: {} }, null, 2));
      for (const file of ["eslint.config.js", "prettier.config.js", ".prettierignore", "tsconfig.json", "tsconfig.lint.json", "scripts/check-imports.ts"]) {
        mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        copyFileSync(path.join(repoRoot, file), path.join(root, file));
      }
      symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"), "dir");
      writeFileSync(path.join(root, "scripts/check-test-prereqs.mjs"), "// stands in for the system-package check\n");
      writeFileSync(
        path.join(root, "vitest.config.ts"),
        'import { defineConfig } from "vitest/config";\nexport default defineConfig({ test: { include: ["test/**/*.test.ts"] } });\n',
      );
      mkdirSync(path.join(root, "src"));
      mkdirSync(path.join(root, "test"));
      writeFileSync(
        path.join(root, "test/tick.test.ts"),
        'import { expect, it } from "vitest";\nimport { tick } from "../src/tick.js";\nit("ticks", () => expect(tick()).toBe(1));\n',
      );
    });
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    // Each run type-checks the small tree for ESLint and starts vitest: about a minute on a loaded machine.
    const npmTest = () => execa("npm", ["test"], { cwd: root, reject: false, all: true, env: { CI: "true", NO_COLOR: "1" } });

    it("fails before any test runs, naming the rule and the line", async () => {
      writeFileSync(path.join(root, "src/tick.ts"), "async function save(): Promise<void> {}\nexport function tick(): number {\n  save();\n  return 1;\n}\n");
      const run = await npmTest();
      expect(run.exitCode).not.toBe(0);
      expect(run.all).toContain("@typescript-eslint/no-floating-promises");
      expect(run.all).toMatch(/src\/tick\.ts[\s\S]*3:3/);
      expect(run.all).not.toContain("ticks");
    }, 300_000);

    it("passes and runs the tests once the promise is handled", async () => {
      writeFileSync(
        path.join(root, "src/tick.ts"),
        "async function save(): Promise<void> {}\nexport function tick(): number {\n  save().catch((err: unknown) => console.error(err));\n  return 1;\n}\n",
      );
      const run = await npmTest();
      expect(run.all).toContain("check-imports: no import circle");
      expect(run.all).toMatch(/1 passed/);
      expect(run.exitCode).toBe(0);
    }, 300_000);

    it("fails, naming the file, when a file is not formatted as Prettier would", async () => {
      writeFileSync(
        path.join(root, "src/tick.ts"),
        "async function save(): Promise<void> {}\nexport function tick(): number {\n  save().catch((err: unknown) => console.error(err));\n      return 1\n}\n",
      );
      const run = await npmTest();
      expect(run.exitCode).not.toBe(0);
      expect(run.all).toMatch(/\[warn\] src\/tick\.ts/);
      expect(run.all).not.toContain("ticks");
    }, 300_000);
  });
});
