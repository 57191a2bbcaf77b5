import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { emitterEventNames } from "@octokit/webhooks";
import { BodyBudget, readCappedBody, removeStaleSpills } from "./read-capped-body.js";
import { signatureCheck } from "./signature-check.js";
import type { HandledEvent } from "../handlers/handled-payloads.js";

/** GitHub caps a webhook payload at 25 MB; anything bigger did not come from GitHub. */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;
/** Most deliveries are a few kilobytes: those stay in memory; the rest of a bigger body goes to disk. */
const MEMORY_BYTES = 1024 * 1024;
/**
 * What all webhook bodies being read at once may hold together (before their signatures are
 * checked, so anyone's): 64 MB in memory, then 512 MB spilled to disk (twenty maximum-size bodies).
 * A delivery past that is answered 503 with Retry-After; GitHub's own are a few kilobytes.
 */
export const BODY_BUDGET = { memoryBytes: 64 * 1024 * 1024, diskBytes: 512 * 1024 * 1024 };

/**
 * Event names @octokit/webhooks knows: the bare names (`issues`, not `issues.labeled`). GitHub has
 * more (GHES sends `user`, `enterprise`, `cache_sync`…); those are answered 202 and not handed on,
 * since no handler is listening and a name such as `constructor` or `hasOwnProperty` would reach
 * a prototype property in @octokit/webhooks' table of hooks.
 */
const KNOWN_EVENTS: ReadonlySet<string> = new Set(emitterEventNames.filter((name) => !name.includes(".")));
/** What a GitHub event name looks like. */
const EVENT_NAME = /^[a-z][a-z0-9_]{0,63}$/;

const JSON_CONTENT_TYPE = /^\s*application\/json\s*(?:;|$)/i;

export interface WebhookIngressOptions {
  /** `/api/github/webhooks`, Probot's path. */
  path: string;
  secret: string;
  maxBytes?: number;
  /** What the bodies being read at once may hold together (BODY_BUDGET unless told). */
  bodyBudget?: { memoryBytes: number; diskBytes: number };
  /** Where the part of a body past the first megabyte waits for its signature to be checked. */
  spillDir: string;
  /**
   * Hands a signed, checked delivery to the app's handlers; `handled` is what checkPayload parsed
   * for the handler that listens to it (absent when none does).
   */
  receive(event: { id: string; name: string; handled?: { key: HandledEvent; payload: unknown } }): Promise<void>;
  /** Whether the handler that will see this delivery finds what it reads (src/handlers/handled-payloads.ts). */
  checkPayload(
    event: string,
    payload: Record<string, unknown>,
  ): { ok: true; handled?: { key: HandledEvent; payload: unknown } } | { ok: false; reason: string };
  /** Frees the chunks of a big body already read (young-garbage-collector.ts); without it V8 keeps them until its next collection. */
  collectGarbage?(): void;
  log: Logger;
  /** Told when a delivery's request arrives and when it is answered: job work waits meanwhile (webhook-priority.ts). */
  priority?: { begin(): void; end(signed: boolean): void };
}

/** How long a refused upload's connection stays half-open after the answer, so the client reads it. */
const LINGER_MS = 1000;

/**
 * After a 413 the rest of the upload is not read: it waits in the kernel's buffers and the
 * client's, costing this process nothing, until the connection is cut. Cutting it right after the
 * answer, with unread bytes waiting, makes the kernel send a reset, and a client still uploading
 * then often loses the 413 it was sent; so our side is closed first (the client sees the answer
 * and the end of it) and the connection is cut a moment later.
 */
function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  // A listener on a paused stream: Node then does not read and drop the rest itself after the answer.
  req.pause();
  req.on("data", () => undefined);
  res.once("finish", () => {
    req.socket.end();
    setTimeout(() => req.socket.destroy(), LINGER_MS).unref();
  });
}

/** A header value as it may be logged: it came from anyone, so it is cut short. */
function clip(value: string | undefined): string | undefined {
  return value === undefined ? undefined : value.slice(0, 100);
}

/**
 * The webhook endpoint, in place of @octokit/webhooks' middleware: everything a stranger can send
 * is refused here, cheaply and with a clear status, before any of it is parsed, logged or handed
 * to the handlers. Why not the middleware: on a bad signature it logs the unverified body through the
 * app's logger (a 40 MB body became 120 MB of log lines, each run through the redactor), it reads
 * bodies of any size whole, and a signed payload a handler cannot read ends as a 500.
 *
 * In order: path and method; `application/json` (415); the three GitHub headers (400); a declared
 * Content-Length over the cap (413, nothing read); the body, counted as it arrives (413 past the
 * cap, nothing kept; past the first megabyte it waits on disk, not in memory); the signature over the raw bytes (401); the event name (400 if it is not
 * one, 202 and nothing more if no handler could listen to it); the JSON (400); the fields the handler reads (400, naming them). Only then
 * do the handlers run: 200 when they are done, 500 only when they fail (the store is down), which
 * GitHub shows as a failed delivery to redeliver. A refusal logs the delivery id, event, size and
 * reason, never the body.
 */
export function webhookIngress(options: WebhookIngressOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const maxBytes = options.maxBytes ?? MAX_WEBHOOK_BYTES;
  const limits = options.bodyBudget ?? BODY_BUDGET;
  const budget = { memory: new BodyBudget(limits.memoryBytes), disk: new BodyBudget(limits.diskBytes) };
  const log = options.log;
  removeStaleSpills(options.spillDir, 10 * 60_000);

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
    const missing = [
      ["x-github-event", event],
      ["x-github-delivery", deliveryId],
      ["x-hub-signature-256", signature],
    ]
      .filter(([, value]) => !value)
      .map(([header]) => header);
    if (missing.length > 0) return refuse(400, `required headers missing: ${missing.join(", ")}`);

    const tooLarge = () => {
      closeAfterAnswer(req, res);
      return refuse(413, `the body is larger than GitHub's ${maxBytes} bytes`);
    };
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBytes) {
      bytes = declared;
      return tooLarge();
    }
    const check = signatureCheck(options.secret);
    const body = await readCappedBody(req, {
      maxBytes,
      memoryBytes: MEMORY_BYTES,
      budget,
      spillDir: options.spillDir,
      onChunk: check.update,
      ...(options.collectGarbage ? { collectGarbage: options.collectGarbage } : {}),
    });
    bytes = body.bytes;
    // From here the request costs CPU, not waiting: job work holds back until it is answered, and
    // for a moment after when it was signed (src/ingress/webhook-priority.ts). Reading the body is
    // not counted: a client that sends slowly must not hold the jobs back for as long as it likes.
    let signedDelivery = false;
    if (body.ok && options.priority) {
      const priority = options.priority;
      priority.begin();
      res.once("close", () => priority.end(signedDelivery));
    }
    if (!body.ok) {
      if (body.reason === "too-large") return tooLarge();
      if (body.reason === "busy") {
        closeAfterAnswer(req, res);
        return refuse(503, "too many webhook bodies are being read at once; send it again later", { "retry-after": "5" });
      }
      if (body.reason === "spill-failed")
        return refuse(503, "the body could not be held for its signature check (is the data folder's disk full?)", { "retry-after": "60" });
      log.info({ deliveryId: clip(deliveryId), event: clip(event), bytes, ms: Date.now() - started }, "webhook delivery abandoned before its body arrived");
      return true;
    }
    const signed = check.matches(signature!);
    let raw: Buffer | undefined;
    try {
      // Signed by GitHub: the body may be read back, joined and parsed. Unsigned: it is never read back.
      if (signed) raw = await body.read();
    } finally {
      await body.discard();
    }
    signedDelivery = raw !== undefined;
    if (!raw) return refuse(401, "the X-Hub-Signature-256 signature does not match the body and this app's webhook secret");

    if (!EVENT_NAME.test(event!)) return refuse(400, "X-GitHub-Event is not an event name");
    if (!KNOWN_EVENTS.has(event!)) {
      log.info({ deliveryId: clip(deliveryId), event, bytes }, "webhook delivery of an event no handler listens to; ignored");
      answer(202, "ignored: no handler for this event");
      return true;
    }
    let payload: unknown;
    try {
      payload = JSON.parse(raw.toString("utf8"));
    } catch {
      return refuse(400, "the body is not valid JSON");
    }
    if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return refuse(400, "the body is not a JSON object");
    const checked = options.checkPayload(event!, payload as Record<string, unknown>);
    if (!checked.ok) return refuse(400, checked.reason);

    try {
      await options.receive({ id: deliveryId!, name: event!, ...(checked.handled ? { handled: checked.handled } : {}) });
    } catch (err) {
      // A handler failed (the store, not the payload: that was checked). Its errors carry the whole
      // payload, so only their messages are logged. GitHub shows the delivery as failed.
      const messages = (err instanceof AggregateError ? err.errors : [err]).map((e) => (e instanceof Error ? e.message : String(e)));
      log.error({ deliveryId: clip(deliveryId), event, bytes, errors: messages }, "webhook handler failed; GitHub will show the delivery as failed");
      answer(500, "the delivery could not be recorded; redeliver it later");
      return true;
    }
    // Debug, not info: the handler's own line says at info what the delivery did (a job recorded, a bot's label ignored).
    log.debug(
      {
        deliveryId: clip(deliveryId),
        event,
        action: typeof (payload as { action?: unknown }).action === "string" ? clip((payload as { action: string }).action) : undefined,
        bytes,
        ms: Date.now() - started,
      },
      "webhook delivery received",
    );
    answer(200, "received");
    return true;
  };
}
