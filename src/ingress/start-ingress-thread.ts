import { createRequire } from "node:module";
import os from "node:os";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { WebhookActivity } from "./webhook-activity.js";
import type { DeliveryCount, IngressCommand, IngressMessage, IngressThreadData } from "./ingress-messages.js";

export interface IngressThreadOptions extends Omit<IngressThreadData, "activity"> {
  activity: WebhookActivity;
  log: Logger;
  /** A log line the thread wrote, to be redacted and written where the controller's lines go. */
  writeLine(line: string): void;
  onCounts(counts: DeliveryCount[]): void;
  /** A job or request was recorded: the scheduler has work. */
  onWake(): void;
}

export interface IngressThread {
  /** The port the thread's server listens on (the one asked for, or the one given for port 0). */
  port: number;
  /** Stops listening, waits for the requests under way (a grace second for slow ones), ends the thread. */
  stop(): Promise<void>;
}

/**
 * The thread's heap: the young generation of the main thread's (`npm start`'s 2 MB semi-space,
 * three of them), where V8 would otherwise grow it to 48 MB under a burst (RSS); the old
 * generation as large as the main thread's, for a 25 MB payload parsed whole.
 */
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 6, maxOldGenerationSizeMb: 160 };

/**
 * The main thread's nice once the webhook thread listens (Linux, where nice is per thread). Under
 * load the two share the cores with the job work's GC and child processes, and a delivery whose
 * answer waited behind job work made the tail of the ingest p99: on a quiet 2-core machine,
 * `bench:ingest` at 100/s gave ×1.20, ×0.96 and ×1.64 of bare Probot's p99 without it, ×0.95 and
 * ×0.87 with it. Raising one's own nice needs no privilege (lowering it would). What the main
 * thread starts afterwards inherits it: a restarted webhook thread (which then runs level with the
 * main thread, as before), the local backend's agents.
 */
export const MAIN_THREAD_NICE = 10;

/** Lowers the calling thread's priority to MAIN_THREAD_NICE, never raises it; elsewhere than Linux, nothing. */
function yieldToWebhooks(log: Logger): void {
  if (process.platform !== "linux") return;
  try {
    // Pid 0: the calling thread on Linux.
    if (os.getPriority(0) < MAIN_THREAD_NICE) os.setPriority(0, MAIN_THREAD_NICE);
  } catch (err) {
    log.warn({ err }, "could not lower the main thread's priority below the webhook thread's");
  }
}

/** How long stop() waits for the thread to end by itself before ending it. */
const STOP_TIMEOUT_MS = 10_000;
/** After the thread died: the wait before the next one starts (a thread that dies at once is not restarted in a tight loop). */
const RESTART_DELAY_MS = 1000;

/**
 * Where the thread's code is: dist/ingress/ingress-thread.js as built. In a TypeScript run (the
 * tests, `tsx`) it is the .ts file beside this one, which Node 20 cannot load in a worker by
 * itself (a worker's `--import tsx` is not applied to its entry): a two-line entry loads it
 * through tsx's API.
 */
function threadEntry(): { entry: string | URL; eval: boolean } {
  if (!import.meta.url.endsWith(".ts")) return { entry: new URL("./ingress-thread.js", import.meta.url), eval: false };
  // require.resolve finds the CommonJS build; its ESM twin sits beside it.
  const api = pathToFileURL(
    createRequire(import.meta.url)
      .resolve("tsx/esm/api")
      .replace(/\.cjs$/, ".mjs"),
  ).href;
  const file = new URL("./ingress-thread.ts", import.meta.url).href;
  return {
    entry: `import(${JSON.stringify(api)}).then((api) => api.tsImport(${JSON.stringify(file)}, ${JSON.stringify(import.meta.url)}));`,
    eval: true,
  };
}

/**
 * Starts the ingress thread (src/ingress/ingress-thread.ts) and resolves once its server listens;
 * rejects with the thread's own reason when it cannot (the port is taken, the store cannot be
 * opened). A thread that dies later is logged and started again on the same port: webhooks must
 * not stop being answered because of one bad moment.
 */
export async function startIngressThread(options: IngressThreadOptions): Promise<IngressThread> {
  const { activity, log, writeLine, onCounts, onWake, ...rest } = options;
  let stopping = false;
  let current: Worker | undefined;
  let stopped: Promise<void> = Promise.resolve();

  const spawn = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const data: IngressThreadData = { ...rest, port, activity: activity.buffer };
      const { entry, eval: evaluate } = threadEntry();
      const worker = new Worker(entry, { workerData: data, eval: evaluate, resourceLimits: RESOURCE_LIMITS });
      current = worker;
      let listening = false;
      let ended!: () => void;
      stopped = new Promise<void>((r) => (ended = r));
      worker.on("message", (message: IngressMessage) => {
        switch (message.type) {
          case "batch":
            for (const line of message.lines) writeLine(line);
            if (message.counts.length > 0) onCounts(message.counts);
            if (message.wake) onWake();
            return;
          case "listening":
            listening = true;
            resolve(message.port);
            return;
          case "failed":
            if (!listening) reject(new Error(message.message));
            else log.error({ reason: message.message }, "the webhook thread failed");
            return;
          case "stopped":
            // Its server and store are closed; whatever else it holds (a timer) must not keep it.
            void worker.terminate();
            return;
        }
      });
      worker.on("error", (err) => {
        if (!listening) reject(err);
        else log.error({ err }, "the webhook thread failed");
      });
      worker.on("exit", (code) => {
        ended();
        if (!listening) {
          reject(new Error(`the webhook thread ended (code ${code}) before it listened`));
          return;
        }
        if (stopping) return;
        // The thread died: the port is free again once its server is gone. Start another on it.
        // The deliveries it had in hand will never be answered (GitHub shows them failed).
        activity.clearInFlight();
        log.error({ code }, "the webhook thread ended; starting another");
        setTimeout(() => {
          if (stopping) return;
          spawn(port).catch((err: unknown) => log.error({ err }, "the webhook thread could not be started again; webhooks are not answered"));
        }, RESTART_DELAY_MS).unref();
      });
    });

  const port = await spawn(options.port);
  // The webhook thread keeps the priority it was started with; the job work's thread gives way to it.
  yieldToWebhooks(log);
  return {
    port,
    async stop() {
      stopping = true;
      const worker = current;
      if (!worker) return;
      worker.postMessage({ type: "stop" } satisfies IngressCommand);
      const timer = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
      await stopped;
      clearTimeout(timer);
    },
  };
}
