/**
 * The worker script is copied verbatim onto workers that have Node and nothing else (an SSH host,
 * a VM, a pod's image): its modules may import only Node's built-ins and each other.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readWorkerFiles, workerDir } from "../../src/worker/worker-script-path.js";

/** Every .mjs file of the worker, relative to its folder. */
function workerFiles(): string[] {
  return readdirSync(workerDir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".mjs"))
    .sort();
}

/** Static and dynamic import specifiers of a module's source (the worker has no `require`). */
function specifiers(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(
    /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm,
  ))
    found.push((m[1] ?? m[2] ?? m[3])!);
  return found;
}

describe("the worker script as it is shipped", () => {
  it("imports nothing but Node's built-ins and its own modules", () => {
    const files = workerFiles();
    expect(files).toContain("agent-work-worker.mjs");
    expect(files.filter((f) => f.startsWith("lib/")).length).toBeGreaterThanOrEqual(8);
    const outside: string[] = [];
    for (const file of files) {
      const source = readFileSync(path.join(workerDir, file), "utf8");
      expect(source, `${file} has no require()`).not.toMatch(/\brequire\s*\(/);
      for (const spec of specifiers(source)) {
        if (spec.startsWith("node:")) continue;
        const target = path.resolve(workerDir, path.dirname(file), spec);
        if (spec.startsWith(".") && target.startsWith(workerDir + path.sep) && files.includes(path.relative(workerDir, target))) continue;
        outside.push(`${file} imports ${spec}`);
      }
    }
    expect(outside).toEqual([]);
  });

  it("runs from the files a remote host is sent, with no node_modules in reach: every module loads and bad input gets one result", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "agent-work-standalone-"));
    try {
      const shipped = await readWorkerFiles();
      expect(Object.keys(shipped).sort(), "what is sent is every module there is").toEqual(workerFiles());
      for (const [rel, text] of Object.entries(shipped)) {
        mkdirSync(path.dirname(path.join(dir, "worker", rel)), { recursive: true });
        writeFileSync(path.join(dir, "worker", rel), text);
      }
      const r = spawnSync(process.execPath, [path.join(dir, "worker", "agent-work-worker.mjs")], {
        cwd: dir,
        input: "{}",
        encoding: "utf8",
        env: { PATH: "/usr/bin:/bin" },
        timeout: 20_000,
      });
      expect(r.stderr).toBe("");
      const lines = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string; result?: { outcome: string; message: string } });
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ type: "result", result: { outcome: "error", message: expect.stringMatching(/^bad worker input: /) } });
      expect(r.status).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
