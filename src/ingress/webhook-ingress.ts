import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { emitterEventNames } from "@octokit/webhooks";
import { readCappedBody } from "./read-capped-body.js";
import { signatureMatches } from "./signature-matches.js";

/** GitHub caps a webhook payload at 25 MB; anything bigger did not come from GitHub. */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;

/** Event names a delivery may carry: the bare names (`issues`, not `issues.labeled`) GitHub sends. */
const KNOWN_EVENTS: ReadonlySet<string> = new Set(emitterEventNames.filter((name) => !name.includes(".")));

const JSON_CONTENT_TYPE = /^\s*application\/json\s*(?:;|$)/i;

export interface WebhookIngressOptions {
  /** `/api/github/webhooks`, Probot's path. */
  path: string;
  secret: string;
  maxBytes?: number;
  /** Hands a signed, checked delivery to the app's handlers (Probot's `webhooks.receive`). */
  receive(event: { id: string; name: string; payload: Record<string, unknown> }): Promise<void>;
  /** Whether the handler that will see this delivery finds what it reads (src/handlers/handled-payloads.ts). */
  checkPayload(event: string, payload: Record<string, unknown>): { ok: true } | { ok: false; reason: string };
  log: Logger;
}

/** A header value as it may be logged: it came from anyone, so it is cut short. */
function clip(value: string | undefined): string | undefined {
  return value === undefined ? undefined : value.slice(0, 100);
}

/**
 * The webhook endpoint, in place of @octokit/webhooks' middleware: everything a stranger can send
 * is refused here, cheaply and with a clear status, before any of it is parsed, logged or handed
 * to Probot. Why not the middleware: on a bad signature it logs the unverified body through the
 * app's logger (a 40 MB body became 120 MB of log lines, each run through the redactor), it reads
 * bodies of any size whole, and a signed payload a handler cannot read ends as a 500.
 *
 * In order: path and method; `application/json` (415); the three GitHub headers (400); a declared
 * Content-Length over the cap (413, nothing read); the body, counted as it arrives (413 past the
 * cap, nothing kept); the signature over the raw bytes (401); the event name (400 unless GitHub
 * has such an event); the JSON (400); the fields the handler reads (400, naming them). Only then
 * do the handlers run: 200 when they are done, 500 only when they fail (the store is down), which
 * GitHub shows as a failed delivery to redeliver. A refusal logs the delivery id, event, size and
 * reason, never the body.
 */
export function webhookIngress(options: WebhookIngressOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const maxBytes = options.maxBytes ?? MAX_WEBHOOK_BYTES;
  const log = options.log;

  return async (req, res) => {
    const pathname = (req.url ?? "").split("?")[0]!.replace(/\/+$/, "");
    if (pathname !== options.path) return false;

    const deliveryId = req.headers["x-github-delivery"] as string | undefined;
    const event = req.headers["x-github-event"] as string | undefined;
    const signature = req.headers["x-hub-signature-256"] as string | undefined;
    const started = Date.now();
    let bytes = 0;
    const answer = (status: number, body: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...extra }).end(JSON.stringify(status < 300 ? { ok: body } : { error: body }));
    };
    const refuse = (status: number, reason: string, extra: Record<string, string> = {}) => {
      log.warn({ deliveryId: clip(deliveryId), event: clip(event), bytes, status, reason }, "webhook delivery refused");
      answer(status, reason, extra);
      return true;
    };

    if (req.method !== "POST") return refuse(405, `${clip(req.method)} is not allowed here; GitHub POSTs webhooks`, { allow: "POST" });
    if (!JSON_CONTENT_TYPE.test(req.headers["content-type"] ?? "")) return refuse(415, "Content-Type must be application/json");
    const missing = [["x-github-event", event], ["x-github-delivery", deliveryId], ["x-hub-signature-256", signature]].filter(([, value]) => !value).map(([header]) => header);
    if (missing.length > 0) return refuse(400, `required headers missing: ${missing.join(", ")}`);

    // Connection: close on a refused body: the rest of it is never read, so the connection cannot carry another request.
    const tooLarge = () => refuse(413, `the body is larger than GitHub's ${maxBytes} bytes`, { connection: "close" });
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBytes) {
      bytes = declared;
      return tooLarge();
    }
    const body = await readCappedBody(req, maxBytes);
    bytes = body.bytes;
    if (!body.ok) {
      if (body.reason === "too-large") return tooLarge();
      log.info({ deliveryId: clip(deliveryId), event: clip(event), bytes, ms: Date.now() - started }, "webhook delivery abandoned before its body arrived");
      return true;
    }
    if (!signatureMatches(options.secret, body.chunks, signature!)) {
      return refuse(401, "the X-Hub-Signature-256 signature does not match the body and this app's webhook secret");
    }

    // Signed by GitHub from here on: the body may be joined and parsed.
    if (!KNOWN_EVENTS.has(event!)) return refuse(400, "X-GitHub-Event names no GitHub webhook event");
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.concat(body.chunks, bytes).toString("utf8"));
    } catch {
      return refuse(400, "the body is not valid JSON");
    }
    if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return refuse(400, "the body is not a JSON object");
    const checked = options.checkPayload(event!, payload as Record<string, unknown>);
    if (!checked.ok) return refuse(400, checked.reason);

    try {
      await options.receive({ id: deliveryId!, name: event!, payload: payload as Record<string, unknown> });
    } catch (err) {
      // A handler failed (the store, not the payload: that was checked). Its errors carry the whole
      // payload, so only their messages are logged. GitHub shows the delivery as failed.
      const messages = (err instanceof AggregateError ? err.errors : [err]).map((e) => (e instanceof Error ? e.message : String(e)));
      log.error({ deliveryId: clip(deliveryId), event, bytes, errors: messages }, "webhook handler failed; GitHub will show the delivery as failed");
      answer(500, "the delivery could not be recorded; redeliver it later");
      return true;
    }
    log.info({ deliveryId: clip(deliveryId), event, action: typeof (payload as { action?: unknown }).action === "string" ? clip((payload as { action: string }).action) : undefined, bytes, ms: Date.now() - started }, "webhook delivery received");
    answer(200, "received");
    return true;
  };
}
