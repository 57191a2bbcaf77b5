import type { IncomingMessage, ServerResponse } from "node:http";
import { createJobPages } from "./job-pages.js";
import { startLogRetention } from "./log-retention.js";
import { SignedCookies, sessionSecretFrom } from "./signed-cookies.js";
import type { WebDeps } from "./web-context.js";

/** What the controller starts for people: the job pages, and the timer that keeps their logs from growing forever. */
export function startWeb(deps: Omit<WebDeps, "cookies">): { handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>; close(): void } {
  const pages = createJobPages({ ...deps, cookies: new SignedCookies(sessionSecretFrom(deps.config)) });
  const retention = startLogRetention({ logs: deps.logs, days: deps.config.logRetentionDays, now: deps.now, log: deps.log });
  return {
    handle: (req, res) => pages.handle(req, res),
    close() {
      retention.stop();
      pages.close();
    },
  };
}
