import { randomBytes } from "node:crypto";
import path from "node:path";
import type { Server as HttpServer } from "node:http";
import { Probot } from "probot";
import type { Logger } from "pino";
import type { ControllerConfig } from "./config/env.js";
import { secretValues } from "./config/env.js";
import { Redactor } from "./redact/redactor.js";
import { createLogger, redactedLineWriter } from "./redact/redacting-logger.js";
import { openStore, stopBackgroundCheckpoints } from "./store/open-store.js";
import { JobStore } from "./store/job-store.js";
import { RequestStore } from "./store/request-store.js";
import { OutboxStore } from "./store/outbox-store.js";
import { SshHostKeyStore } from "./store/ssh-host-keys.js";
import { JobLog } from "./logs/job-log.js";
import { Ledger } from "./cost/ledger.js";
import { bundledPriceTable, loadPriceTable } from "./cost/price-table.js";
import { buildBackends, readAgentSecrets } from "./build-backends.js";
import { Reaper } from "./reaper/reaper.js";
import { createMetrics } from "./metrics/metrics.js";
import { poolIdleCost } from "./backends/gce/pool-cost.js";
import { startMetricsServer, type MetricsServer } from "./metrics/start-metrics-server.js";
import type { ApiCallObserver } from "./github/count-api-calls.js";
import { createOctokitClass } from "./github/octokit-class.js";
import { createNodeHttpFetch } from "./github/node-http-fetch.js";
import { restBaseUrl } from "./github/github-access.js";
import type { Backend } from "./backends/types.js";
import { agentWorkApp, type CheckedDelivery } from "./app.js";
import { startWeb } from "./web/start-web.js";
import type { Scheduler } from "./scheduler/scheduler.js";
import type { PipelineDeps } from "./pipeline/deps.js";
import { workerTokenSealer } from "./secrets/seal.js";
import type { GitHubAccess } from "./github/types.js";
import { DeliveryRecovery } from "./deliveries/delivery-recovery.js";
import { startHttpServer, type RequestHandler } from "./ingress/start-http-server.js";
import { webhookIngress } from "./ingress/webhook-ingress.js";
import { youngGarbageCollector } from "./ingress/young-garbage-collector.js";
import { WebhookPriority } from "./ingress/webhook-priority.js";
import { WebhookActivity } from "./ingress/webhook-activity.js";
import { startIngressThread, type IngressThread } from "./ingress/start-ingress-thread.js";
import { checkHandledPayload } from "./handlers/handled-payloads.js";

/** Where GitHub delivers webhooks (Probot's path, which app.yml's setup registers). */
const WEBHOOK_PATH = "/api/github/webhooks";

export interface ControllerOptions {
  config: ControllerConfig;
  /** Where log lines go (tests capture them); stdout by default. */
  logDestination?: NodeJS.WritableStream;
  /** Extra observer of every GitHub REST call (tests count a job's calls). */
  onApiCall?: ApiCallObserver;
  /** Octokit request options, e.g. `{ retries: 0 }` in tests. */
  octokitDefaults?: Record<string, unknown>;
  now?: () => number;
  secondsPerMinute?: number;
  /** Start the scheduler's timer (default). Tests turn it off and call `tick()`. */
  autoSchedule?: boolean;
  /** Backends that replace or add to the configured ones, by name (tests use fakes). */
  extraBackends?: ReadonlyMap<string, Backend>;
  /** Told each step of a job's life (the crash-matrix test's controller stops itself there). */
  onStep?: PipelineDeps["onStep"];
  /** Receive webhooks on their own thread; config.webhookThread (WEBHOOK_THREAD) by default. */
  webhookThread?: boolean;
}

export interface Controller {
  probot: Probot;
  /**
   * The main thread's HTTP server: the public one, or with the webhook thread, the loopback one
   * the thread passes job pages and `/healthz` to (`url` is the public one either way).
   */
  httpServer: HttpServer;
  scheduler: Scheduler;
  store: JobStore;
  requests: RequestStore;
  outbox: OutboxStore;
  logs: JobLog;
  ledger: Ledger;
  reaper: Reaper;
  /** Asks GitHub to redeliver what this controller missed; scans labelled issues beyond that. */
  deliveries: DeliveryRecovery;
  log: Logger;
  redactor: Redactor;
  url: string;
  /** Where `/metrics` is served (METRICS_HOST:METRICS_PORT); absent when METRICS_PORT=0. */
  metricsUrl?: string;
  close(options?: { abort?: boolean }): Promise<void>;
  /**
   * Stops for a SIGTERM: no new claims, running jobs handed back to the queue, other phases let
   * finish, within `graceMs` (see Scheduler.shutdown); then the job logs are flushed and
   * everything is closed. Webhooks are still recorded while it drains.
   */
  shutdown(options?: { graceMs?: number }): Promise<{ handedBack: string[]; unfinished: string[] }>;
}

/**
 * How long a SIGTERM lets phases under way finish before their leases are released anyway: inside
 * the 30 s Kubernetes gives a pod by default, with room left to close.
 */
export const DEFAULT_SHUTDOWN_GRACE_MS = 20_000;

/** Builds and starts everything one controller process runs: webhook server, scheduler, store. */
export async function startController(options: ControllerOptions): Promise<Controller> {
  const { config } = options;
  if (!config.appId || !config.privateKey || !config.webhookSecret) {
    throw new Error("startController needs APP_ID, a private key and WEBHOOK_SECRET (without them, main.ts serves Probot's setup page)");
  }
  const webhookThread = options.webhookThread ?? config.webhookThread;
  if (webhookThread && options.now)
    throw new Error("a custom clock cannot reach the webhook thread: set WEBHOOK_THREAD=false (or webhookThread: false) with `now`");
  // Agent keys kept in Secret Manager are read once, at start, and hidden like every other secret.
  const agentEnv = config.agentEnvSecrets ? { ...config.agentEnv, ...(await readAgentSecrets(config.agentEnvSecrets)) } : config.agentEnv;
  const redactor = new Redactor([...secretValues(config), ...Object.values(agentEnv)]);
  const priceTable = config.pricesFile ? loadPriceTable(config.pricesFile) : bundledPriceTable;
  const log = createLogger({ level: config.logLevel, redactor, ...(options.logDestination ? { destination: options.logDestination } : {}) });
  // DATABASE_URL: PostgreSQL, which replicas share; otherwise SQLite in DATA_DIR (one controller).
  const db = await openStore({
    dataDir: config.dataDir,
    databaseUrl: config.databaseUrl,
    onPoolError: (err) => log.warn({ err }, "a PostgreSQL connection dropped; the pool opens another on the next query"),
    backgroundCheckpoints: true,
    onCheckpointError: (err) => log.warn({ err }, "the SQLite checkpoint thread failed; commits checkpoint the WAL themselves again"),
  });
  const now = options.now ?? Date.now;
  const store = new JobStore(db, now);
  const requests = new RequestStore(db, now);
  const outbox = new OutboxStore(db, now);
  const logs = new JobLog(db, now);
  // The warm pool costs money every hour: the hourly budget and /metrics both count it.
  const poolIdleUsdPerHour = config.gce?.pool?.length
    ? poolIdleCost(config.gce.pool, { diskGb: config.gce.diskGb, diskType: config.gce.diskType, park: config.gce.poolPark ?? "suspend" }, priceTable).usdPerHour
    : 0;
  const ledger = new Ledger(db, now, priceTable, poolIdleUsdPerHour);
  const metrics = createMetrics(() => store.countByState(), { repoLabels: config.metrics?.repoLabels ?? false, poolIdleUsdPerHour });
  const onApiCall: ApiCallObserver = (call) => {
    metrics.githubApiCalls.inc(call);
    options.onApiCall?.(call);
  };
  // One connection pool to GitHub for every client, the app's token requests included.
  const githubFetch = createNodeHttpFetch();
  // Deliveries first: while they arrive, GitHub calls and scheduler passes wait their turn.
  const activity = new WebhookActivity();
  const priority = new WebhookPriority({ activity });
  const turn = () => priority.turn();
  const Octokit = createOctokitClass({ log, onApiCall, fetch: githubFetch, overrides: options.octokitDefaults, gate: priority });
  // ssh host keys seen on first use are remembered in the store: every restart and replica refuses a changed one.
  const built = await buildBackends(config, log, options.extraBackends, new SshHostKeyStore(db, now));
  for (const secret of built.secrets) redactor.add(secret);
  const backends = built.backends;

  let scheduler: Scheduler | undefined;
  let receiveChecked: ((delivery: CheckedDelivery) => Promise<void>) | undefined;
  let github: GitHubAccess | undefined;
  const web = startWeb({ store, requests, logs, ledger, config, log, now, wake: () => scheduler?.wake() });
  const owner = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const probot = new Probot({
    appId: config.appId,
    privateKey: config.privateKey,
    secret: config.webhookSecret,
    baseUrl: restBaseUrl(config.gheHost, config.gheProtocol),
    log,
    Octokit,
    request: { fetch: githubFetch as unknown as typeof fetch },
  });
  const appHandlers: RequestHandler[] = [];
  await probot.load(
    agentWorkApp(
      {
        store,
        requests,
        outbox,
        logs,
        ledger,
        priceTable,
        backends,
        config: { ...config, agentEnv },
        redactor,
        log,
        metrics,
        now,
        owner,
        secondsPerMinute: options.secondsPerMinute ?? 60,
        sealer: workerTokenSealer(config.privateKey),
        githubFetch,
        ...(options.onStep ? { onStep: options.onStep } : {}),
        turn,
      },
      (s, g) => {
        scheduler = s;
        github = g;
      },
      web.handle,
      (r) => (receiveChecked = r),
    ),
    { cwd: process.cwd(), addHandler: (handler) => void appHandlers.push(handler) },
  );
  // Before the webhook server: a metrics port that is taken fails the start while nothing else runs yet.
  let metricsServer: MetricsServer | undefined;
  if (config.metrics) {
    metricsServer = await startMetricsServer({
      host: config.metrics.host,
      port: config.metrics.port,
      registry: metrics.registry,
      log: log.child({ name: "metrics" }),
      ...(config.metrics.token ? { token: config.metrics.token } : {}),
    }).catch(async (err: unknown) => {
      web.close();
      await built.close();
      await stopBackgroundCheckpoints(db);
      await db.destroy();
      throw err;
    });
  }
  // Webhooks first: a stranger's request is refused there before anything else reads it. With the
  // webhook thread, they are received there, and the main thread's server (on the loopback) serves
  // what the thread passes on; without it, this thread serves both.
  const ingressOptions = {
    path: WEBHOOK_PATH,
    secret: config.webhookSecret,
    spillDir: path.join(config.dataDir, "incoming-webhooks"),
  };
  const http = await startHttpServer({
    host: webhookThread ? "127.0.0.1" : config.host,
    port: webhookThread ? 0 : config.port,
    handlers: webhookThread
      ? appHandlers
      : [
          webhookIngress({
            ...ingressOptions,
            receive: (delivery) => receiveChecked!(delivery),
            checkPayload: checkHandledPayload,
            collectGarbage: youngGarbageCollector(),
            log: log.child({ name: "webhooks" }),
            priority,
          }),
          ...appHandlers,
        ],
    requestTimeoutMs: config.requestTimeoutSeconds * 1000,
    log: log.child({ name: "http" }),
  }).catch(async (err: unknown) => {
    await metricsServer?.close();
    throw err;
  });
  let ingressThread: IngressThread | undefined;
  if (webhookThread) {
    const writeLine = redactedLineWriter(redactor, options.logDestination ?? process.stdout);
    ingressThread = await startIngressThread({
      host: config.host,
      port: config.port,
      requestTimeoutMs: config.requestTimeoutSeconds * 1000,
      webhookPath: ingressOptions.path,
      webhookSecret: ingressOptions.secret,
      spillDir: ingressOptions.spillDir,
      dataDir: config.dataDir,
      ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
      logLevel: config.logLevel,
      triggerLabel: config.triggerLabel,
      appId: config.appId,
      defaultBackend: "local",
      activity,
      mainPort: http.port,
      log: log.child({ name: "webhook-thread" }),
      writeLine,
      onCounts: (counts) => {
        for (const [event, outcome, n] of counts) metrics.deliveries.inc({ event, outcome }, n);
      },
      onWake: () => scheduler?.wake(),
    }).catch(async (err: unknown) => {
      await http.stop();
      await metricsServer?.close();
      throw err;
    });
  }
  /** Stops taking requests: the webhook thread's server, then the main thread's. */
  const stopServing = async () => {
    await ingressThread?.stop();
    await http.stop();
  };
  const httpServer = http.server;
  if (!scheduler || !github) throw new Error("the app did not create its scheduler");
  // The reaper: workers no live job owns, jobs whose worker vanished or ran past their deadline.
  const reaper = new Reaper({ store, backends, now, log: log.child({ name: "reaper" }), onJobEnded: (job) => scheduler!.publishFinal(job) });
  // Lost deliveries: GitHub never redelivers by itself (src/deliveries/delivery-recovery.ts).
  const deliveries = new DeliveryRecovery({
    db,
    store,
    github,
    triggerLabel: config.triggerLabel,
    appId: config.appId,
    defaultBackend: "local",
    log: log.child({ name: "deliveries" }),
    now,
    wake: () => scheduler!.wake(),
    intervalMs: config.redeliveryIntervalSeconds * 1000,
    labelScanMaxAgeMs: config.labelScanMaxAgeDays * 86_400_000,
  });
  if (options.autoSchedule !== false) {
    scheduler.start();
    reaper.start();
    deliveries.start();
  }
  const port = ingressThread ? ingressThread.port : http.port;
  log.info(
    { port, metrics: metricsServer?.url ?? "off", dataDir: config.dataDir, store: config.databaseUrl ? "postgres" : "sqlite", owner },
    "agent-work controller started",
  );

  return {
    probot,
    httpServer,
    scheduler,
    store,
    requests,
    outbox,
    logs,
    ledger,
    reaper,
    deliveries,
    log,
    redactor,
    url: `http://127.0.0.1:${port}`,
    ...(metricsServer ? { metricsUrl: metricsServer.url } : {}),
    async close(closeOptions = {}) {
      priority.release();
      await deliveries.stop();
      await reaper.stop();
      await scheduler!.stop(closeOptions);
      // Live log streams hold their connections open; the server cannot close until they end.
      web.close();
      await stopServing();
      await metricsServer?.close();
      await built.close();
      await stopBackgroundCheckpoints(db);
      await db.destroy();
      githubFetch.close();
    },
    async shutdown({ graceMs = DEFAULT_SHUTDOWN_GRACE_MS } = {}) {
      priority.release();
      await deliveries.stop();
      await reaper.stop();
      const outcome = await scheduler!.shutdown(graceMs);
      await logs.flush().catch((err) => log.warn({ err }, "could not write the last job log lines"));
      web.close();
      await stopServing();
      await metricsServer?.close();
      await built.close();
      await stopBackgroundCheckpoints(db);
      await db.destroy();
      githubFetch.close();
      return outcome;
    },
  };
}
