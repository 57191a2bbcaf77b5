import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Registry } from "prom-client";

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** When set, a scrape must send `Authorization: Bearer <token>`. A secret: never logged. */
  token?: string;
  log: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

export interface MetricsServer {
  /** `http://<host>:<port>` as bound. */
  url: string;
  close(): Promise<void>;
}

/**
 * `/metrics` on an address of its own, apart from the webhook server: the webhook port faces
 * GitHub (often the whole internet), while the metrics describe the controller's load and spend.
 * It serves `GET /metrics` and nothing else. With a token, a scrape without the right bearer token
 * gets 401 and learns nothing; the comparison takes the same time whatever was sent.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const expected = options.token === undefined ? undefined : digest(options.token);
  const server = createServer((req, res) => void answer(req, res));
  // Nothing here reads a body: a client that holds a connection open without finishing its headers is cut off.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("Not found: this server serves GET /metrics only\n");
      return;
    }
    if (expected !== undefined && !authorised(req.headers.authorization, expected)) {
      options.log.debug({ remoteAddress: req.socket.remoteAddress }, "metrics scrape refused: no or wrong bearer token");
      res
        .writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Bearer realm="agent-work metrics"' })
        .end("Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n");
      return;
    }
    try {
      const body = await options.registry.metrics();
      res.writeHead(200, { "content-type": options.registry.contentType, "cache-control": "no-store" }).end(req.method === "HEAD" ? undefined : body);
    } catch (err) {
      options.log.warn({ err }, "could not collect the metrics");
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("could not collect the metrics\n");
    }
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      const advice =
        err.code === "EADDRINUSE"
          ? `another process listens on ${options.host}:${options.port}; set METRICS_PORT to a free port, or 0 to turn the metrics server off`
          : err.code === "EADDRNOTAVAIL"
            ? `${options.host} is not an address of this machine; set METRICS_HOST to one (127.0.0.1 by default)`
            : "check METRICS_HOST and METRICS_PORT";
      reject(new Error(`the metrics server cannot listen on ${options.host}:${options.port} (${err.code ?? err.message}): ${advice}`));
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(options.port, options.host);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Hashing first makes both sides the same length, so timingSafeEqual never leaks the token's length. */
function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

function authorised(header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? "");
  return match !== null && timingSafeEqual(digest(match[1]!), expected);
}
