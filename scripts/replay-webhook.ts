/**
 * Replays one webhook payload against a running controller, signed like GitHub signs it:
 *   npm run replay -- <event> <payload.json> [url] [delivery-id]
 * e.g. npm run replay -- issues test/fixtures/issues.labeled.json http://localhost:3000
 * WEBHOOK_SECRET (or .env) must match the controller's.
 */
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { sign } from "@octokit/webhooks-methods";

const [event, file, url = "http://localhost:3000", deliveryId = randomUUID()] = process.argv.slice(2);
if (!event || !file) {
  console.error("usage: npm run replay -- <event> <payload.json> [url] [delivery-id]");
  process.exit(2);
}
try {
  process.loadEnvFile?.(".env");
} catch {
  // no .env: the environment must carry WEBHOOK_SECRET
}
const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("WEBHOOK_SECRET is not set (in the environment or .env); the controller would reject the delivery");
  process.exit(2);
}
const body = readFileSync(file, "utf8");
const res = await fetch(`${url.replace(/\/$/, "")}/api/github/webhooks`, {
  method: "POST",
  headers: {
    "content-type": "application/json",
    "x-github-event": event,
    "x-github-delivery": deliveryId,
    "x-hub-signature-256": await sign(secret, body),
  },
  body,
});
console.log(`${res.status} ${res.statusText} (delivery ${deliveryId}) ${await res.text()}`);
process.exit(res.ok ? 0 : 1);
