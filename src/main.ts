/**
 * The process: load the configuration from the environment, then either serve Probot's setup page
 * (no app registered yet) or start the controller. Everything else lives in controller.ts.
 */
import { loadControllerConfig, describeControllerConfig } from "./config/env.js";
import { startController } from "./controller.js";
import { missingHostTools } from "./check-host-tools.js";
import { stopOnSignals } from "./stop-on-signals.js";
import { serveSetupPage, WEBHOOK_PATH } from "./setup/serve-setup-page.js";
import { createSmeeChannel } from "./webhook-proxy/create-smee-channel.js";
import { forwardSmeeChannel } from "./webhook-proxy/forward-smee-channel.js";

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
    await serveSetupPage({ config, env: process.env, createChannel: () => createSmeeChannel(), say: (line) => console.info(line) });
    return;
  }

  const missing = missingHostTools(config);
  if (missing.length > 0) {
    console.error(`agent-work cannot start:\n${missing.map((m) => `  - ${m}`).join("\n")}`);
    process.exit(2);
  }
  const controller = await startController({ config });
  controller.log.info({ config: describeControllerConfig(config) }, "configuration");
  if (config.webhookProxyUrl) {
    // GitHub cannot reach this machine: it delivers to the smee.io channel, and we fetch from there.
    forwardSmeeChannel({ source: config.webhookProxyUrl, target: `${controller.url}${WEBHOOK_PATH}`, log: controller.log.child({ name: "webhook-proxy" }) });
  }
  stopOnSignals(controller);
}

main().catch((err) => {
  console.error("agent-work failed to start:", err instanceof Error ? err.message : err);
  process.exit(1);
});
