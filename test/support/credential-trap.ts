/**
 * A second "git server" that a hostile agent tries to send the worker's push (and with it the token)
 * to: an HTTP server on 127.0.0.1 that answers every request with 401 and a Basic challenge, the way
 * a real smart-HTTP server asks git for credentials, and records everything it was sent. It also
 * records what arrives when it is used as an HTTP proxy (absolute URLs, CONNECT) and bytes that are
 * not HTTP at all (an ssh client, say): whatever reaches it is a finding.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface TrappedRequest {
  /** `GET`, `POST`, `CONNECT`, or `(not http)` for bytes that did not parse as HTTP. */
  method: string;
  /** As sent: a path, an absolute URL (proxy use) or `host:port` (CONNECT). */
  url: string;
  authorization?: string;
  proxyAuthorization?: string;
  /** The Basic credentials decoded from either header, when there were any. */
  credential?: { user: string; password: string };
}

export interface CredentialTrap {
  url: string;
  port: number;
  requests: TrappedRequest[];
  /** Requests that carried any credential. */
  credentials(): TrappedRequest[];
  close(): Promise<void>;
}

function decodeBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+(\S+)/i.exec(header ?? "");
  if (!m?.[1]) return undefined;
  const text = Buffer.from(m[1], "base64").toString("utf8");
  const colon = text.indexOf(":");
  return colon < 0 ? { user: text, password: "" } : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

function recordOf(method: string, url: string, headers: http.IncomingHttpHeaders): TrappedRequest {
  const authorization = headers.authorization;
  const proxyAuthorization = headers["proxy-authorization"];
  const credential = decodeBasic(authorization) ?? decodeBasic(proxyAuthorization);
  return {
    method,
    url,
    ...(authorization ? { authorization } : {}),
    ...(proxyAuthorization ? { proxyAuthorization } : {}),
    ...(credential ? { credential } : {}),
  };
}

export async function startCredentialTrap(): Promise<CredentialTrap> {
  const requests: TrappedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    requests.push(recordOf(req.method ?? "?", req.url ?? "", req.headers));
    req.resume();
    res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain" });
    res.end("authentication required\n");
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  // An https proxy use: ask for proxy credentials, which is what a hostile proxy would do.
  server.on("connect", (req: http.IncomingMessage, socket: Socket) => {
    requests.push(recordOf("CONNECT", req.url ?? "", req.headers));
    socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n');
  });
  server.on("clientError", (_err, socket: Socket) => {
    requests.push({ method: "(not http)", url: "" });
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    credentials: () => requests.filter((r) => r.authorization !== undefined || r.proxyAuthorization !== undefined),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
