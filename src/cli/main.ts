#!/usr/bin/env node
/** The ops CLI `agent-work` (package.json "bin"): see run-cli.ts for the commands. */
import { runCli } from "./run-cli.js";

// The controller's convention (src/main.ts): a .env file in the working directory, if there is one.
try {
  process.loadEnvFile?.(".env");
} catch {
  // no .env: the environment alone configures the CLI
}
const code = await runCli(process.argv.slice(2), process.env, {
  out: (line) => process.stdout.write(line + "\n"),
  err: (line) => process.stderr.write(line + "\n"),
});
process.exitCode = code;
