import { Agent, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { RequestHandler } from "./start-http-server.js";

/** Headers about one hop's connection, not the request: never passed on (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"]);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const kept: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) kept[name] = value;
  return kept;
}

/**
 * The ingress thread's handler for every request that is not a webhook (job pages, sign-in,
 * `/healthz`): passed on, headers and body as they came, to the main thread's HTTP server on the
 * loopback, and its answer streamed back as it comes (a job page's live log stays open). Node 20
 * cannot share a listening port between threads, hence one hop more for these pages; webhooks,
 * the path that must stay fast, never take it. A client that goes away ends the inner request,
 * and an inner server that cannot be reached is a 502.
 */
export function passToMain(port: number): { handle: RequestHandler; close(): void } {
  const agent = new Agent({ keepAlive: true, maxFreeSockets: 8 });
  const handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const inner = request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
      answer.pipe(res);
      answer.once("error", () => res.destroy());
    });
    inner.once("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end("the controller's main thread did not answer\n");
      else res.destroy();
    });
    res.once("close", () => {
      if (!res.writableFinished) inner.destroy();
    });
    req.pipe(inner);
    return true;
  };
  return { handle, close: () => agent.destroy() };
}
