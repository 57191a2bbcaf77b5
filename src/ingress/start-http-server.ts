import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";

/** Answers a request (true) or leaves it to the next handler (false or nothing), as Probot's handlers do. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean | void | Promise<boolean | void>;

export interface HttpServerOptions {
  host: string;
  port: number;
  /** Tried in order; a request none answers gets 404. */
  handlers: readonly RequestHandler[];
  /**
   * The longest a client may take to send a whole request, headers and body (Node answers 408 and
   * closes the connection). GitHub sends a delivery in well under its own 10 s; a body trickled
   * in a byte a second holds a connection for no longer than this.
   */
  requestTimeoutMs: number;
  log: Logger;
}

const STOP_GRACE_MS = 1000;

/** Headers come first and are small: they get at most 10 s of the request's time. */
const MAX_HEADERS_TIMEOUT_MS = 10_000;

/**
 * The controller's one HTTP server: webhooks, `/healthz`, `/metrics`, the job pages. Our own rather
 * than Probot's `Server`, whose handler chain puts @octokit/webhooks' middleware first and whose
 * timeouts (Node's: 300 s per request, checked every 30 s) cannot be set before it listens.
 * Once a request has arrived whole, no timeout applies: a job page's live log stream stays open.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<{ server: Server; port: number; stop(): Promise<void> }> {
  const { log } = options;
  const server = createServer({
    requestTimeout: options.requestTimeoutMs,
    headersTimeout: Math.min(MAX_HEADERS_TIMEOUT_MS, options.requestTimeoutMs),
    // How often Node looks for requests past those timeouts (30 s by default, longer than most of them).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, options.requestTimeoutMs / 4)),
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const started = Date.now();
    // The path only: a query may hold an OAuth code.
    const path = (req.url ?? "").split("?")[0]!.slice(0, 200);
    res.once("finish", () => log.debug({ method: req.method, path, status: res.statusCode, ms: Date.now() - started }, "http request"));
    void (async () => {
      for (const handler of options.handlers) {
        if (await handler(req, res)) return;
      }
      if (!res.headersSent) res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    })().catch((err: unknown) => {
      log.error({ err, method: req.method, path }, "request failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new Error(`port ${options.port} is already in use; set PORT to another one`) : err);
    });
    server.listen({ host: options.host, port: options.port }, resolve);
  });
  const address = server.address();
  return {
    server,
    /** The port it listens on (the one chosen for port 0). */
    port: typeof address === "object" && address ? address.port : options.port,
    /**
     * Stops listening and waits for requests under way; a connection still sending after a grace
     * second (a slow body, a client that never finishes) is cut rather than waited for.
     */
    async stop() {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS);
      await closed;
      clearTimeout(grace);
    },
  };
}
