/**
 * Two checks over the imports of src/ that ESLint does not make (part of `npm run lint`):
 *
 *  - **No import circle.** Every static import that is not `import type` (and every
 *    `export … from`) is an edge; a cycle among src/ files fails. A cycle is load-order trouble
 *    (a value read before its module ran) and a sign two files are one. Dynamic `import()` is not an
 *    edge: it runs later, and it is how the controller loads a backend only when configured.
 *  - **Dependencies where they run.** A package src/ imports for its value (static or dynamic) must be
 *    in `dependencies` (the Docker image prunes the rest); a `dependencies` entry nothing in src/
 *    imports for its value belongs in `devDependencies`, or nowhere.
 *
 *   tsx scripts/check-imports.ts [root]     # exit 1 and one line per finding
 */
import { readFileSync, readdirSync, existsSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export interface ImportsOfFile {
  /** Static value imports and re-exports: specifiers as written. */
  readonly static: string[];
  /** `import("…")` with a literal specifier. */
  readonly dynamic: string[];
}

/** The value imports of one module's text (`import type` and `export type … from` left out). */
export function importsOf(fileName: string, text: string): ImportsOfFile {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: ImportsOfFile = { static: [], dynamic: [] };
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) {
      const clause = statement.importClause;
      if (clause?.isTypeOnly) continue;
      // `import { type A, type B } from` imports nothing at run time (a bare `import "x"` does).
      const named = clause?.namedBindings;
      const onlyTypes = clause && !clause.name && named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      if (onlyTypes) continue;
      found.static.push(statement.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(statement) && statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier)) {
      if (statement.isTypeOnly) continue;
      found.static.push(statement.moduleSpecifier.text);
    }
  }
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) found.dynamic.push(arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Every cycle of the graph, each once, as the files in import order starting from its smallest. */
export function findImportCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's strongly connected components; a component of more than one file (or a file that
  // imports itself) holds a cycle. One cycle per component is enough to report and fix.
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (node: string): void => {
    indices.set(node, index);
    low.set(node, index);
    index++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        connect(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, indices.get(next)!));
      }
    }
    if (low.get(node) === indices.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) components.push(component);
    }
  };
  for (const node of [...graph.keys()].sort()) if (!indices.has(node)) connect(node);
  return components.map((component) => cycleWithin(graph, new Set(component)));
}

/** One cycle through the smallest file of a strongly connected component (breadth-first: the shortest). */
function cycleWithin(graph: ReadonlyMap<string, readonly string[]>, members: ReadonlySet<string>): string[] {
  const start = [...members].sort()[0]!;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const next of graph.get(node) ?? []) {
      if (!members.has(next)) continue;
      if (next === start) {
        const cycle = [node];
        while (cycle[0] !== start) cycle.unshift(cameFrom.get(cycle[0]!)!);
        return cycle;
      }
      if (!cameFrom.has(next) && next !== start) {
        cameFrom.set(next, node);
        queue.push(next);
      }
    }
  }
  return [start];
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`; relative and `node:` specifiers → undefined. */
export function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("node:")) return undefined;
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
  return builtinModules.includes(name) ? undefined : name;
}

export interface Finding {
  readonly kind: "cycle" | "dev-dependency-at-run-time" | "unused-dependency" | "undeclared-package";
  readonly message: string;
}

export interface PackageJson {
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
}

/** The findings for a tree: `root` holds package.json and src/. */
export function checkImports(root: string): Finding[] {
  const srcDir = path.join(root, "src");
  const files = listTs(srcDir);
  const graph = new Map<string, string[]>();
  const runtimePackages = new Map<string, string>(); // package → first file that imports it
  for (const file of files) {
    const rel = path.relative(root, file);
    const imports = importsOf(file, readFileSync(file, "utf8"));
    const edges: string[] = [];
    for (const specifier of imports.static) {
      const target = resolveRelative(file, specifier);
      if (target) edges.push(path.relative(root, target));
    }
    graph.set(rel, edges);
    for (const specifier of [...imports.static, ...imports.dynamic]) {
      const name = packageOf(specifier);
      if (name && !runtimePackages.has(name)) runtimePackages.set(name, rel);
    }
  }
  const findings: Finding[] = findImportCycles(graph).map((cycle) => ({
    kind: "cycle" as const,
    message: `import circle: ${[...cycle, cycle[0]].join(" → ")}`,
  }));
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as PackageJson;
  const deps = pkg.dependencies ?? {};
  const devDeps = pkg.devDependencies ?? {};
  for (const [name, file] of [...runtimePackages].sort()) {
    if (name in deps) continue;
    if (name in devDeps) {
      findings.push({
        kind: "dev-dependency-at-run-time",
        message: `${file} imports ${name}, a devDependency: the image leaves it out; move it to dependencies (or import it as \`import type\`)`,
      });
    } else {
      findings.push({ kind: "undeclared-package", message: `${file} imports ${name}, which package.json does not declare` });
    }
  }
  for (const name of Object.keys(deps).sort()) {
    if (!runtimePackages.has(name)) {
      findings.push({
        kind: "unused-dependency",
        message: `${name} is in dependencies but nothing in src/ imports it for its value: move it to devDependencies or remove it`,
      });
    }
  }
  return findings;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(full));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(full);
  }
  return out.sort();
}

/** `./x.js` from a .ts file → the .ts file it names (NodeNext: the specifier names the output). */
function resolveRelative(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const target = path.resolve(path.dirname(from), specifier);
  for (const candidate of [target.replace(/\.js$/, ".ts"), target.replace(/\.mjs$/, ".mts"), target, `${target}.ts`, path.join(target, "index.ts")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), ".."));
  const findings = checkImports(root);
  for (const finding of findings) console.error(`check-imports: ${finding.message}`);
  if (findings.length > 0) process.exit(1);
  console.log("check-imports: no import circle in src/, and every dependency is where it runs");
}
