/**
 * The process: load the configuration from the environment, then either serve Probot's setup page
 * (no app registered yet) or start the controller. Everything else lives in controller.ts.
 */
import { run } from "probot";
import { loadControllerConfig, describeControllerConfig } from "./config/env.js";
import { startController } from "./controller.js";
import { missingHostTools } from "./check-host-tools.js";
import { stopOnSignals } from "./stop-on-signals.js";

async function main(): Promise<void> {
  // Probot's own convention: a .env file in the working directory (written by the setup page).
  try {
    process.loadEnvFile?.(".env");
  } catch {
    // No .env: the environment alone configures the controller.
  }
  const loaded = loadControllerConfig(process.env);
  if (!loaded.ok) {
    console.error(`agent-work cannot start; fix these settings (see .env.example):\n${loaded.errors.map((e: string) => `  - ${e}`).join("\n")}`);
    process.exit(2);
  }
  const { config, warnings } = loaded;
  for (const w of warnings) console.warn(`warning: ${w}`);

  if (!config.appId || !config.privateKey) {
    // No GitHub App yet: Probot's setup page registers one from app.yml and writes .env.
    console.info(`No APP_ID yet: open http://localhost:${config.port} to register the GitHub App from app.yml, then restart.`);
    await run(() => undefined, { env: { ...process.env, NO_SMEE_SETUP: process.env.NO_SMEE_SETUP ?? "true" } });
    return;
  }

  const missing = missingHostTools(config);
  if (missing.length > 0) {
    console.error(`agent-work cannot start:\n${missing.map((m) => `  - ${m}`).join("\n")}`);
    process.exit(2);
  }
  const controller = await startController({ config });
  controller.log.info({ config: describeControllerConfig(config) }, "configuration");
  stopOnSignals(controller);
}

main().catch((err) => {
  console.error("agent-work failed to start:", err instanceof Error ? err.message : err);
  process.exit(1);
});
