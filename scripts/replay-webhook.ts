/**
 * Replays one webhook payload against a running controller, signed like GitHub signs it:
 *   npm run replay -- <event> <payload.json> [url] [delivery-id]
 * e.g. npm run replay -- issues test/fixtures/issues.labeled.json http://localhost:3000
 * WEBHOOK_SECRET (or .env) must match the controller's.
 */
import { readFileSync } from "node:fs";
import { deliver } from "../test/support/payloads.js";

const [event, file, url = "http://localhost:3000", deliveryId] = process.argv.slice(2);
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
const result = await deliver(url.replace(/\/$/, ""), secret, event, JSON.parse(readFileSync(file, "utf8")), deliveryId);
console.log(`${result.status} for delivery ${result.deliveryId} in ${Math.round(result.ms)} ms`);
process.exit(result.status < 300 ? 0 : 1);
