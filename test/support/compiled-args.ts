/**
 * src/ and test/support/ compiled to JavaScript, for tests that run the controller or the ops CLI
 * as a process of its own. Started through tsx, every such process compiled and loaded its ~300
 * files again: 1.6 s to ready and 2.7 s of CPU a controller (its webhook thread compiles its half a
 * second time, through tsx's API), and the crash matrix alone starts about forty. From JavaScript
 * (`node file.js`) it is 1.0 s to ready and 1.1 s of CPU.
 *
 * Never stale: the output folder is named by a hash of every input (each file's path and bytes,
 * the compiler's version, tsconfig.json, the checkout's path and its top-level names), so an edit
 * makes a new folder and a test runs what the sources say now (the hash is taken once per test
 * file: vitest loads this module afresh for each). Compiled file by file with
 * TypeScript's transpileModule (as tsx does with esbuild: no type check; `npm run typecheck` is
 * that), into <tmp>/agent-work-compiled-<uid>/<hash>/, laid out as the checkout is: src/ and
 * test/support/ compiled, every other entry (worker/, agent-clis/, package.json, node_modules/,
 * test/fixtures/, …) a link to the checkout's. So a path the code takes from import.meta.url
 * ("../../worker/") lands where it does from the sources, and imports of packages resolve as they
 * do there.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type ts from "typescript";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
/** The folders compiled; everything else in the checkout is linked. */
const COMPILED = ["src", "test/support"] as const;
/** Per user: another user's builds are not ours to write or remove. */
const BASE = path.join(tmpdir(), `agent-work-compiled-${process.getuid?.() ?? "user"}`);
/** A build no run has used for this long is removed when a new one is made. */
const UNUSED_FOR_MS = 24 * 3600_000;

let built: string | undefined;

/**
 * node's arguments that run `file` (a .ts file under src/ or test/support/, absolute or relative to
 * the checkout) as JavaScript, compiled first if the sources changed since the last build:
 * `spawn(process.execPath, [...compiledArgs(file), ...args])`.
 */
export function compiledArgs(file: string): string[] {
  const rel = path.relative(ROOT, path.resolve(ROOT, file));
  if (!COMPILED.some((dir) => rel.startsWith(`${dir}/`)) || !rel.endsWith(".ts"))
    throw new Error(`compiledArgs: ${file} is not a .ts file under ${COMPILED.join(" or ")}`);
  built ??= build();
  // Stack traces with the source's file and line, as under tsx.
  return ["--enable-source-maps", path.join(built, rel.replace(/\.ts$/, ".js"))];
}

const require = createRequire(import.meta.url);

/** tsconfig.json's options, for output a process can run; the compiler itself is loaded only to build (it takes a third of a second). */
function compilerOptions(typescript: typeof ts): ts.CompilerOptions {
  const read = typescript.readConfigFile(path.join(ROOT, "tsconfig.json"), (f) => typescript.sys.readFile(f));
  const { options } = typescript.parseJsonConfigFileContent(read.config, typescript.sys, ROOT);
  return {
    ...options,
    // ESM out (transpileModule does not read package.json's "type", so NodeNext would mean CommonJS).
    module: typescript.ModuleKind.ESNext,
    moduleResolution: typescript.ModuleResolutionKind.Bundler,
    // The source's lines in stack traces (the process runs with --enable-source-maps).
    inlineSourceMap: true,
    sourceMap: false,
    declaration: false,
    noEmit: false,
  };
}

/** Files under `dir` (relative to the checkout), sorted. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const child = path.join(rel, e.name);
      if (e.isDirectory()) walk(child);
      else if (e.isFile()) out.push(child);
    }
  };
  walk(dir);
  return out.sort();
}

/** Entries of `dir` (relative to the checkout) to link rather than compile. */
function linkedEntries(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir))
    .map((name) => (dir ? `${dir}/${name}` : name))
    .filter((rel) => rel !== ".git" && !COMPILED.includes(rel as (typeof COMPILED)[number]) && !COMPILED.some((c) => c.startsWith(`${rel}/`)))
    .sort();
}

function build(): string {
  const files = COMPILED.flatMap(filesUnder);
  const links = ["", ...new Set(COMPILED.flatMap((c) => (c.includes("/") ? [path.dirname(c)] : [])))].flatMap(linkedEntries);
  const hash = createHash("sha256");
  // What decides the output besides the files (this one among them): the compiler's version and tsconfig.json.
  const typescriptVersion = (JSON.parse(readFileSync(require.resolve("typescript/package.json"), "utf8")) as { version: string }).version;
  hash.update(JSON.stringify({ root: ROOT, typescriptVersion, links }));
  hash.update(readFileSync(path.join(ROOT, "tsconfig.json")));
  for (const f of files) hash.update(`\0${f}\0`).update(readFileSync(path.join(ROOT, f)));
  const out = path.join(BASE, hash.digest("hex").slice(0, 32));
  if (existsSync(path.join(out, ".complete"))) {
    // Marks it used, so the clean-up below leaves it alone.
    const now = new Date();
    utimesSync(out, now, now);
    return out;
  }

  // Built beside its final place and renamed in one step: a process running alongside (the other
  // vitest fork) sees the whole folder or none, and if both built, the first rename wins.
  const staging = `${out}.${process.pid}.${Date.now()}`;
  mkdirSync(staging, { recursive: true });
  try {
    const typescript = require("typescript") as typeof ts;
    const options = compilerOptions(typescript);
    for (const f of files) {
      const target = path.join(staging, f);
      mkdirSync(path.dirname(target), { recursive: true });
      if (!f.endsWith(".ts")) {
        copyFileSync(path.join(ROOT, f), target);
        continue;
      }
      const { outputText, diagnostics } = typescript.transpileModule(readFileSync(path.join(ROOT, f), "utf8"), {
        compilerOptions: options,
        fileName: path.join(ROOT, f),
        reportDiagnostics: true,
      });
      // Only syntax errors are reported here (no type check): what tsx would refuse to run.
      if (diagnostics?.length)
        throw new Error(
          `${f}: ${typescript.formatDiagnostics(diagnostics, { getCanonicalFileName: (n) => n, getCurrentDirectory: () => ROOT, getNewLine: () => "\n" })}`,
        );
      writeFileSync(target.replace(/\.ts$/, ".js"), outputText);
    }
    for (const rel of links) {
      mkdirSync(path.dirname(path.join(staging, rel)), { recursive: true });
      symlinkSync(path.join(ROOT, rel), path.join(staging, rel));
    }
    writeFileSync(path.join(staging, ".complete"), "");
    renameSync(staging, out);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    if (existsSync(path.join(out, ".complete"))) return out;
    throw err;
  }
  removeUnused(out);
  return out;
}

function removeUnused(keep: string): void {
  for (const name of readdirSync(BASE)) {
    const dir = path.join(BASE, name);
    try {
      if (dir !== keep && Date.now() - statSync(dir).mtimeMs > UNUSED_FOR_MS) rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone meanwhile
    }
  }
}
