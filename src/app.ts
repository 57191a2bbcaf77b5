import type { ApplicationFunction, Probot } from "probot";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { PipelineDeps } from "./pipeline/deps.js";
import { Scheduler } from "./scheduler/scheduler.js";
import { deliveryRecorder } from "./handlers/record-delivery.js";
import { handledDelivery, handledPayloads, type HandledEvent } from "./handlers/handled-payloads.js";
import { githubAccessFor, restBaseUrl } from "./github/github-access.js";
import type { GitHubAccess } from "./github/types.js";
import type { FetchLike } from "./github/node-http-fetch.js";

/** A delivery the ingress checked: `handled` holds what its handler reads, when one listens to it. */
export interface CheckedDelivery {
  id: string;
  handled?: { key: HandledEvent; payload: unknown };
}

/** `githubFetch`: the connection pool the app's Octokits use (src/github/node-http-fetch.ts). */
export type AppDeps = Omit<PipelineDeps, "github"> & { githubFetch?: FetchLike };

/**
 * The Probot app: wiring only. Handlers record jobs; the scheduler (created here because it needs
 * the app's authenticated Octokits) does the rest. `/healthz` rides on Probot's server; `/metrics`
 * does not (it has a server of its own, src/metrics/start-metrics-server.ts), so it answers 404 here.
 */
export function agentWorkApp(
  deps: AppDeps,
  /** Told the scheduler, and the app's GitHub clients (delivery recovery calls GitHub with them too). */
  onScheduler: (scheduler: Scheduler, github: GitHubAccess) => void,
  /** The job pages (src/web/): `/jobs`, `/jobs/<id>`, sign-in at `/auth/*`. */
  web?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>,
  /**
   * Told the function the webhook ingress hands a checked delivery to: it calls the handler straight
   * away with the payload the ingress already parsed. Probot's own receive builds an installation
   * Octokit for every delivery (no handler here calls GitHub) and parses it again through its
   * middleware's hooks: together about a third of the webhook path's CPU.
   */
  onReceive?: (receive: (delivery: CheckedDelivery) => Promise<void>) => void,
): ApplicationFunction {
  return (app: Probot, { addHandler }) => {
    const baseUrl = restBaseUrl(deps.config.gheHost, deps.config.gheProtocol);
    const github = githubAccessFor(app, baseUrl, Date.now, deps.githubFetch);
    const scheduler = new Scheduler({ ...deps, github });
    onScheduler(scheduler, github);

    const handle = deliveryRecorder({
      store: deps.store,
      requests: deps.requests,
      appId: deps.config.appId ?? 0,
      triggerLabel: deps.config.triggerLabel,
      defaultBackend: "local",
      metrics: deps.metrics,
      log: deps.log,
      wake: () => scheduler.wake(),
    });
    // Through Probot too (tests and `npm run replay` hand deliveries to probot.receive).
    for (const event of Object.keys(handledPayloads) as HandledEvent[]) app.on(event, (context) => handle(event, handledDelivery(event, context)));
    onReceive?.((delivery) =>
      delivery.handled ? handle(delivery.handled.key, { id: delivery.id, payload: delivery.handled.payload as never }) : Promise.resolve(),
    );

    addHandler(async (req: IncomingMessage, res: ServerResponse) => {
      const url = req.url?.split("?")[0];
      if (req.method === "GET" && url === "/healthz") {
        await deps.store.countByState();
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, activeJobs: scheduler.activeJobs }));
        return true;
      }
      return false;
    });
    if (web) addHandler(web);
  };
}
