import { run, type Server } from "probot";
import type { ControllerConfig } from "../config/env.js";

/** Where Probot's server takes webhooks (its default `webhookPath`). */
export const WEBHOOK_PATH = "/api/github/webhooks";

export interface SetupPageOptions {
  config: Pick<ControllerConfig, "publicUrl" | "webhookProxyUrl">;
  /** The process environment: Probot's setup page reads it and writes what it registers into it (and .env). */
  env: NodeJS.ProcessEnv;
  /** Makes a smee.io channel (src/webhook-proxy/create-smee-channel.ts); a parameter so tests bring their own. */
  createChannel: () => Promise<string>;
  say: (line: string) => void;
}

/**
 * No GitHub App yet: serve Probot's setup page, which registers one from app.yml and writes
 * APP_ID, PRIVATE_KEY, WEBHOOK_SECRET and the OAuth client to .env. The app's webhook URL is the
 * one thing app.yml cannot know: PUBLIC_URL + /api/github/webhooks for a server GitHub can reach,
 * else a smee.io channel (WEBHOOK_PROXY_URL, made here and written to .env) that the controller
 * forwards from once it runs. Probot takes that URL from `WEBHOOK_PROXY_URL` in the environment,
 * so app.yml must not carry `hook_attributes` (Probot lays the manifest over what it generates).
 */
export async function serveSetupPage(options: SetupPageOptions): Promise<{ server: Server; webhookUrl?: string }> {
  const { config, env } = options;
  const chosen = config.publicUrl ? `${config.publicUrl}${WEBHOOK_PATH}` : config.webhookProxyUrl;
  if (chosen) env.WEBHOOK_PROXY_URL = chosen;
  else delete env.WEBHOOK_PROXY_URL;
  const server = await run(() => undefined, {
    // The setup page writes anything POSTed to /probot/import into .env: only this machine may
    // reach it unless HOST says otherwise (the Docker image binds 0.0.0.0 and publishes the port
    // on the host's loopback). It receives no webhooks, so its own server proxies none.
    env: { ...env, HOST: env.HOST?.trim() || "localhost", WEBHOOK_PROXY_URL: undefined },
    SmeeClient: { createChannel: options.createChannel },
  });
  // run() copied .env over the environment first; the page reads this when it renders the manifest.
  if (chosen) env.WEBHOOK_PROXY_URL = chosen;
  const webhookUrl = env.WEBHOOK_PROXY_URL;
  const where = `http://${server.host.includes(":") ? `[${server.host}]` : server.host}:${server.port}`;
  if (webhookUrl) {
    options.say(`No APP_ID yet: open ${where} to register the GitHub App from app.yml; its webhooks will go to ${webhookUrl}. Then restart.`);
  } else {
    options.say(
      `No APP_ID yet: open ${where} to register the GitHub App from app.yml, then restart.\n` +
        `WARNING: no webhook URL that reaches this controller (smee.io could not be reached, or NO_SMEE_SETUP=true): the app would send its webhooks nowhere.\n` +
        `  Set PUBLIC_URL (a server GitHub can reach) or WEBHOOK_PROXY_URL (a channel from https://smee.io/new) and restart before you register it.`,
    );
  }
  return webhookUrl ? { server, webhookUrl } : { server };
}
