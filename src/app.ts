import type { ApplicationFunction, Probot } from "probot";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { PipelineDeps } from "./pipeline/deps.js";
import { Scheduler } from "./scheduler/scheduler.js";
import { recordLabeledIssue } from "./handlers/record-labeled-issue.js";
import { recordCommentCommand } from "./handlers/record-comment-command.js";
import { recordCheckRunAction } from "./handlers/record-check-run-action.js";
import { recordReviewCommand } from "./handlers/record-review-command.js";
import { handledDelivery } from "./handlers/handled-payloads.js";
import { githubAccessFor, restBaseUrl } from "./github/github-access.js";
import type { GitHubAccess } from "./github/types.js";
import type { FetchLike } from "./github/node-http-fetch.js";

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
): ApplicationFunction {
  return (app: Probot, { addHandler }) => {
    const baseUrl = restBaseUrl(deps.config.gheHost, deps.config.gheProtocol);
    const github = githubAccessFor(app, baseUrl, Date.now, deps.githubFetch);
    const scheduler = new Scheduler({ ...deps, github });
    onScheduler(scheduler, github);

    const recordDeps = {
      store: deps.store,
      triggerLabel: deps.config.triggerLabel,
      defaultBackend: "local",
      metrics: deps.metrics,
      log: deps.log,
      wake: () => scheduler.wake(),
    };
    // Each handler reads its delivery through the schema the ingress checked (src/handlers/handled-payloads.ts).
    app.on("issues.labeled", (context) => recordLabeledIssue(recordDeps, handledDelivery("issues.labeled", context)));
    app.on("issue_comment.created", (context) =>
      recordCommentCommand({ ...recordDeps, requests: deps.requests }, handledDelivery("issue_comment.created", context)),
    );
    const reviewDeps = { ...recordDeps, requests: deps.requests };
    app.on("pull_request_review_comment.created", (context) =>
      recordReviewCommand(reviewDeps, "pull_request_review_comment.created", handledDelivery("pull_request_review_comment.created", context)),
    );
    app.on("pull_request_review.submitted", (context) =>
      recordReviewCommand(reviewDeps, "pull_request_review.submitted", handledDelivery("pull_request_review.submitted", context)),
    );
    const actionDeps = { ...recordDeps, requests: deps.requests, appId: deps.config.appId ?? 0 };
    app.on("check_run.requested_action", (context) => recordCheckRunAction(actionDeps, handledDelivery("check_run.requested_action", context)));
    app.on("check_run.rerequested", (context) => recordCheckRunAction(actionDeps, handledDelivery("check_run.rerequested", context)));

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
