/**
 * scripts/check-imports.ts, which `npm run lint` (and so `npm test`) runs: it finds import circles in
 * src/ and packages in the wrong section of package.json, and the tree has neither.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { checkImports, findImportCycles, importsOf, packageOf } from "../../scripts/check-imports.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tree(files: Record<string, string>, pkg: object): string {
  const root = mkdtempSync(path.join(tmpdir(), "check-imports-"));
  dirs.push(root);
  writeFileSync(path.join(root, "package.json"), JSON.stringify(pkg));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  }
  return root;
}

describe("check-imports", () => {
  it("reads value imports and re-exports, and leaves type-only imports out", () => {
    const found = importsOf(
      "a.ts",
      [
        'import { a } from "./a.js";',
        'import type { B } from "./b.js";',
        'import { type C, type D } from "./c.js";',
        'import { type E, f } from "./e.js";',
        'import "./side-effect.js";',
        'export { g } from "./g.js";',
        'export type { H } from "./h.js";',
        'const lazy = () => import("pg");',
      ].join("\n"),
    );
    expect(found.static).toEqual(["./a.js", "./e.js", "./side-effect.js", "./g.js"]);
    expect(found.dynamic).toEqual(["pg"]);
  });

  it("names the package of a specifier, and no package for node builtins and relative paths", () => {
    expect(packageOf("@octokit/webhooks")).toBe("@octokit/webhooks");
    expect(packageOf("@google-cloud/compute/build/x")).toBe("@google-cloud/compute");
    expect(packageOf("yaml/util")).toBe("yaml");
    expect(packageOf("node:fs")).toBeUndefined();
    expect(packageOf("fs")).toBeUndefined();
    expect(packageOf("./x.js")).toBeUndefined();
  });

  it("finds each cycle once, and none in a graph without one", () => {
    const graph = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a", "d"]],
      ["d", []],
      ["e", ["e"]],
    ]);
    expect(findImportCycles(graph)).toEqual([["a", "b", "c"], ["e"]]);
    expect(
      findImportCycles(
        new Map([
          ["a", ["b"]],
          ["b", []],
        ]),
      ),
    ).toEqual([]);
  });

  it("fails a tree with a circle, a devDependency used at run time, an unused dependency and an undeclared package", () => {
    const root = tree(
      {
        "src/run.ts": 'import { report } from "./report.js";\nimport { z } from "zod";\nexport const run = () => report();\n',
        "src/report.ts": 'import { run } from "./run.js";\nimport { Octokit } from "@octokit/core";\nexport const report = () => run;\n',
        "src/lazy.ts": 'export const load = () => import("@google-cloud/compute");\n',
      },
      {
        dependencies: { "@google-cloud/compute": "^6", pino: "^10" },
        devDependencies: { "@octokit/core": "^7" },
      },
    );
    const findings = checkImports(root);
    expect(findings.map((f) => f.kind).sort()).toEqual(["cycle", "dev-dependency-at-run-time", "undeclared-package", "unused-dependency"]);
    expect(findings.find((f) => f.kind === "cycle")?.message).toContain("src/report.ts → src/run.ts → src/report.ts");
    expect(findings.find((f) => f.kind === "unused-dependency")?.message).toContain("pino");
  });

  it("passes a tree whose cycle goes through a type-only import and whose lazy import is a dependency", () => {
    const root = tree(
      {
        "src/run.ts": 'import { report } from "./report.js";\nexport type Run = () => void;\nexport const run = () => report();\n',
        "src/report.ts": 'import type { Run } from "./run.js";\nimport type { Octokit } from "@octokit/core";\nexport const report = (r?: Run) => r;\n',
        "src/lazy.ts": 'export const load = () => import("@google-cloud/compute");\n',
      },
      { dependencies: { "@google-cloud/compute": "^6" }, devDependencies: { "@octokit/core": "^7" } },
    );
    expect(checkImports(root)).toEqual([]);
  });

  it("finds nothing in this repository's src/ and package.json", () => {
    expect(checkImports(repoRoot)).toEqual([]);
  });
});
