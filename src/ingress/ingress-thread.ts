/**
 * The ingress thread: GitHub's webhooks are received here, on an event loop of their own, so that
 * job work on the main thread (GitHub answers, store writes, GC of their garbage) never stands
 * between a delivery and its answer. It runs the controller's public HTTP server: a webhook is
 * checked (webhook-ingress.ts) and recorded by its handler on this thread's own connection to the
 * store, then answered; every other request is passed on to the main thread (pass-to-main.ts).
 * What the main thread must know comes back in batches (ingress-messages.ts): log lines (redacted
 * there, by the one redactor), delivery counts for /metrics, and a wake for the scheduler; whether
 * a delivery is being handled is shared memory (webhook-activity.ts). Started and stopped by
 * start-ingress-thread.ts.
 */
import { parentPort, workerData } from "node:worker_threads";
import { openStore } from "../store/open-store.js";
import { JobStore } from "../store/job-store.js";
import { RequestStore } from "../store/request-store.js";
import { deliveryRecorder } from "../handlers/record-delivery.js";
import { checkHandledPayload } from "../handlers/handled-payloads.js";
import { pinoLogger } from "../redact/redacting-logger.js";
import { webhookIngress } from "./webhook-ingress.js";
import { startHttpServer } from "./start-http-server.js";
import { passToMain } from "./pass-to-main.js";
import { youngGarbageCollector } from "./young-garbage-collector.js";
import { WebhookActivity } from "./webhook-activity.js";
import { nameThisThread, THREAD_NAMES } from "./name-this-thread.js";
import type { IngressCommand, IngressMessage, IngressThreadData } from "./ingress-messages.js";

nameThisThread(THREAD_NAMES.webhooks);
const port = parentPort!;
const data = workerData as IngressThreadData;
const post = (message: IngressMessage) => port.postMessage(message);

// What goes to the main thread waits for the end of this turn of the event loop, then leaves in one message.
let lines: string[] = [];
let counts = new Map<string, number>();
let wake = false;
let flushing = false;
function flushSoon(): void {
  if (flushing) return;
  flushing = true;
  setImmediate(flush);
}
function flush(): void {
  flushing = false;
  if (lines.length === 0 && counts.size === 0 && !wake) return;
  post({ type: "batch", lines, counts: [...counts].map(([key, n]) => [...(JSON.parse(key) as [string, string]), n]), wake });
  lines = [];
  counts = new Map();
  wake = false;
}

const log = pinoLogger(
  {
    write(line: string) {
      lines.push(line);
      flushSoon();
    },
  },
  { level: data.logLevel },
);

async function start(): Promise<{ stop(): Promise<void> }> {
  const db = await openStore({
    dataDir: data.dataDir,
    ...(data.databaseUrl ? { databaseUrl: data.databaseUrl } : {}),
    poolSize: 4,
    secondConnection: true,
    onPoolError: (err) => log.warn({ err }, "a PostgreSQL connection of the webhook thread dropped; the pool opens another on the next query"),
  });
  const record = deliveryRecorder({
    store: new JobStore(db, Date.now),
    requests: new RequestStore(db, Date.now),
    appId: data.appId,
    triggerLabel: data.triggerLabel,
    defaultBackend: data.defaultBackend,
    metrics: {
      deliveries: {
        inc({ event, outcome }) {
          const key = JSON.stringify([event, outcome]);
          counts.set(key, (counts.get(key) ?? 0) + 1);
          flushSoon();
        },
      },
    },
    log,
    wake() {
      wake = true;
      flushSoon();
    },
  });
  const ingress = webhookIngress({
    path: data.webhookPath,
    secret: data.webhookSecret,
    spillDir: data.spillDir,
    receive: (delivery) =>
      delivery.handled ? record(delivery.handled.key, { id: delivery.id, payload: delivery.handled.payload as never }) : Promise.resolve(),
    checkPayload: checkHandledPayload,
    collectGarbage: youngGarbageCollector(),
    log: log.child({ name: "webhooks" }),
    // Shared with the main thread's job-work priority, which reads it.
    priority: new WebhookActivity(data.activity),
  });
  const main = passToMain(data.mainPort);
  const http = await startHttpServer({
    host: data.host,
    port: data.port,
    handlers: [ingress, main.handle],
    requestTimeoutMs: data.requestTimeoutMs,
    log: log.child({ name: "http" }),
  }).catch(async (err: unknown) => {
    await db.destroy();
    throw err;
  });
  post({ type: "listening", port: http.port });
  return {
    async stop() {
      await http.stop();
      main.close();
      await db.destroy();
    },
  };
}

start().then(
  (server) => {
    port.on("message", (command: IngressCommand) => {
      if (command.type !== "stop") return;
      void server.stop().then(
        () => {
          flush();
          post({ type: "stopped" });
          port.close();
        },
        (err: unknown) => {
          flush();
          post({ type: "failed", message: `the webhook thread did not stop cleanly: ${err instanceof Error ? err.message : String(err)}` });
          port.close();
        },
      );
    });
  },
  (err: unknown) => {
    flush();
    post({ type: "failed", message: err instanceof Error ? err.message : String(err) });
    port.close();
  },
);
