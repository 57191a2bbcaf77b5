/**
 * Where the real agent CLIs are installed for the tests: `agent-clis/node_modules` of this checkout
 * (`npm install --no-save --prefix agent-clis`, which `npm test` runs first when they are missing), or
 * AGENT_CLIS_DIR. A missing CLI fails the test with the command that installs it: never a skip.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CHECKOUT = fileURLToPath(new URL("../../", import.meta.url));

export function agentClisDir(): string {
  return process.env.AGENT_CLIS_DIR ?? path.join(CHECKOUT, "agent-clis", "node_modules");
}

/** The pinned versions, from the one list the images install too. */
export const PINNED_CLI_VERSIONS: Record<string, string> = JSON.parse(readFileSync(path.join(CHECKOUT, "agent-clis", "package.json"), "utf8")).dependencies;

/** The folder of the CLIs' executables, checked to hold the pinned version of `pkg`. */
export function agentCliBin(pkg: string, bin: string): string {
  const dir = agentClisDir();
  const installed = path.join(dir, pkg, "package.json");
  const want = PINNED_CLI_VERSIONS[pkg];
  const have = existsSync(installed) ? (JSON.parse(readFileSync(installed, "utf8")) as { version?: string }).version : undefined;
  if (!existsSync(path.join(dir, ".bin", bin)) || have !== want) {
    throw new Error(
      `${pkg}@${want} is not installed in ${dir} (found ${have ?? "nothing"}); run: npm install --no-save --prefix agent-clis (npm test does it)`,
    );
  }
  return path.join(dir, ".bin");
}
