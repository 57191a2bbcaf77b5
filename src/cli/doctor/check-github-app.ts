import { ProbotOctokit } from "probot";
import type { ControllerConfig } from "../../config/env.js";
import { restBaseUrl } from "../../github/github-access.js";
import type { DoctorCheck } from "./doctor-check.js";

const WEBHOOK_PATH = "/api/github/webhooks";
/** How many recent deliveries to look at: a few days of a quiet app, an hour of a busy one. */
const RECENT_DELIVERIES = 50;

interface Delivery {
  guid: string;
  delivered_at: string;
  status: string;
  status_code: number;
  event: string;
  action: string | null;
  redelivery: boolean;
}

/**
 * The GitHub App as GitHub sees it, asked with the app's own JWT: that APP_ID and the private key
 * belong together (`GET /app`), where GitHub sends the webhooks (`GET /app/hook/config`) and
 * whether the last deliveries reached anything (`GET /app/hook/deliveries`) — the usual answer to
 * "I added the label and nothing happened".
 */
export async function checkGitHubApp(
  config: Pick<ControllerConfig, "appId" | "privateKey" | "gheHost" | "gheProtocol" | "publicUrl" | "webhookProxyUrl">,
  add: (check: DoctorCheck) => void,
): Promise<void> {
  if (!config.appId || !config.privateKey) {
    add({
      name: "github app",
      status: "fail",
      detail: "APP_ID and a private key are not set",
      fix: "run `npm start` and register the app on the setup page it serves (it writes them to .env)",
    });
    return;
  }
  const baseUrl = restBaseUrl(config.gheHost, config.gheProtocol);
  const octokit = new ProbotOctokit({
    auth: { appId: config.appId, privateKey: config.privateKey },
    baseUrl,
    retry: { enabled: false },
    throttle: { enabled: false },
    request: { signal: AbortSignal.timeout(20_000) },
  });
  let settings = "the app's settings on GitHub";
  try {
    const { data: app } = await octokit.request("GET /app");
    settings = app?.html_url ?? settings;
    add({ name: "github app", status: "ok", detail: `APP_ID ${config.appId} is ${app?.slug ?? app?.name} (${settings}); the private key belongs to it` });
  } catch (err) {
    const status = (err as { status?: number }).status;
    add({
      name: "github app",
      status: "fail",
      detail: `GET ${baseUrl}/app with the app's JWT: ${status ? `${status} ` : ""}${err instanceof Error ? err.message : String(err)}`,
      fix:
        status === 401
          ? "APP_ID and PRIVATE_KEY do not belong together (or the key was revoked): copy both again from the app's settings page (Private keys → Generate)"
          : status === 404
            ? "no such app: check APP_ID (and GHE_HOST for GitHub Enterprise Server)"
            : "GitHub did not answer: check the network (and GHE_HOST / GHE_PROTOCOL)",
    });
    return;
  }

  const expected = config.webhookProxyUrl ?? (config.publicUrl ? `${config.publicUrl}${WEBHOOK_PATH}` : undefined);
  try {
    const { data: hook } = await octokit.request("GET /app/hook/config");
    const url = hook.url ?? "";
    const fixUrl = `set "Webhook URL" in ${settings} (General) to ${expected ?? "<PUBLIC_URL>/api/github/webhooks, or a smee.io channel in WEBHOOK_PROXY_URL"}`;
    if (!url || /example\.invalid/.test(url)) {
      add({
        name: "webhook url",
        status: "fail",
        detail: url ? `GitHub sends webhooks to ${url}, which is nowhere` : "the app has no webhook URL",
        fix: fixUrl,
      });
    } else if (expected && url !== expected) {
      add({
        name: "webhook url",
        status: "fail",
        detail: `GitHub sends webhooks to ${url}, but this controller ${config.webhookProxyUrl ? "forwards from the channel in WEBHOOK_PROXY_URL" : `is at ${expected}`}`,
        fix: fixUrl,
      });
    } else if (!expected) {
      add({
        name: "webhook url",
        status: "warn",
        detail: `GitHub sends webhooks to ${url}; with neither PUBLIC_URL nor WEBHOOK_PROXY_URL set, nothing here says that reaches this controller`,
        fix: "set PUBLIC_URL to this controller's public base URL (or WEBHOOK_PROXY_URL to the smee.io channel)",
      });
    } else {
      add({
        name: "webhook url",
        status: "ok",
        detail: `GitHub sends webhooks to ${config.webhookProxyUrl ? "the smee.io channel in WEBHOOK_PROXY_URL" : url}`,
      });
    }
    if (hook.insecure_ssl === "1")
      add({ name: "webhook url", status: "warn", detail: "SSL verification is off for the webhook", fix: `turn it on in ${settings}` });
  } catch (err) {
    add({
      name: "webhook url",
      status: "fail",
      detail: `GET /app/hook/config: ${err instanceof Error ? err.message : String(err)}`,
      fix: "the app has no webhook: activate it in the app's settings",
    });
    return;
  }

  try {
    const { data } = await octokit.request("GET /app/hook/deliveries", { per_page: RECENT_DELIVERIES });
    const deliveries = data as unknown as Delivery[];
    const failed = deliveries.filter((d) => d.status_code === 0 || d.status_code >= 400);
    const where = `${settings}/advanced (Recent Deliveries: each request and answer, and a Redeliver button)`;
    if (deliveries.length === 0) {
      add({
        name: "webhook deliveries",
        status: "warn",
        detail: "GitHub has delivered nothing yet",
        fix: "install the app on a repository (its settings → Install App) and add the label to an issue",
      });
    } else if (failed.length > 0) {
      const last = failed[0]!;
      add({
        name: "webhook deliveries",
        status: failed[0] === deliveries[0] ? "fail" : "warn",
        detail: `${failed.length} of the last ${deliveries.length} failed; the latest failure ${last.delivered_at}: ${last.event}${last.action ? `.${last.action}` : ""} → ${last.status_code || "no answer"} ${last.status} (delivery ${last.guid})`,
        fix: `${last.status_code === 401 || last.status_code === 400 ? "a signature mismatch: WEBHOOK_SECRET differs from the app's Webhook secret; " : ""}see ${where}`,
      });
    } else {
      add({
        name: "webhook deliveries",
        status: "ok",
        detail: `the last ${deliveries.length} were answered (latest ${deliveries[0]!.delivered_at}, ${deliveries[0]!.event})`,
      });
    }
  } catch (err) {
    add({ name: "webhook deliveries", status: "warn", detail: `GET /app/hook/deliveries: ${err instanceof Error ? err.message : String(err)}` });
  }
}
