// The agent's only way out under `network: allowlist`: a proxy the worker runs outside the sandbox,
// on a Unix socket the sandbox can reach (the sandbox has its own network namespace with nothing
// but loopback, so there is no other route, no DNS and no UDP). It speaks HTTP CONNECT and plain
// HTTP, decides by host name against the allow-list, resolves names itself, never lets a name lead
// to a link-local address (cloud metadata servers) or to this machine's loopback, and refuses IP
// addresses the list does not name exactly. For a host with a credential rule it forwards plain-HTTP requests to the real
// upstream and adds the credential there, so the key never enters the sandbox.
import dns from "node:dns/promises";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import path from "node:path";

const MAX_DENIED_KEYS = 200;
const MAX_HOST_CHARS = 253;
/** sun_path is 108 bytes with its terminating NUL. */
const MAX_SOCKET_PATH = 107;

/** `*.example.com` matches below example.com; `example.com` only itself; a pattern with `:port` only that port. */
export function hostAllowed(host, port, patterns) {
  const h = host.toLowerCase().replace(/\.$/, "");
  for (const raw of patterns) {
    const p = raw.toLowerCase();
    const colon = p.lastIndexOf(":");
    const [name, pport] = colon > 0 && /^\d+$/.test(p.slice(colon + 1)) ? [p.slice(0, colon), Number(p.slice(colon + 1))] : [p, undefined];
    if (pport !== undefined && pport !== port) continue;
    if (name.startsWith("*.") ? h.endsWith(name.slice(1)) && h.length > name.length - 1 : h === name) return true;
  }
  return false;
}

function isLinkLocal(address) {
  return /^169\.254\./.test(address) || /^fe[89ab][0-9a-f]:/i.test(address) || address.toLowerCase() === "fd00:ec2::254";
}

/** This machine itself: what a name must never lead to (the controller's port on the local backend). */
function isLoopback(address) {
  const a = address.toLowerCase();
  return /^127\./.test(a) || a === "::1" || a === "0.0.0.0" || a === "::" || /^::ffff:127\./.test(a);
}

/** Splits `host:port` (or `[v6]:port`), with a default port. */
function splitHostPort(text, defaultPort) {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m) return null;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!(port > 0 && port < 65536)) return null;
  return { host: m[1], port };
}

/**
 * Starts the proxy on `socketPath`. `onDenied(entry)` is called the first time a host:port is
 * refused. Returns `{ close(), denied() }`; `denied()` lists `{ host, port, count, firstAt, why }`.
 */
export async function startEgressProxy({ socketPath, allow, credentials = [], onDenied = () => {} }) {
  const denied = new Map();
  const deny = (rawHost, port, why) => {
    // The agent chose the name: a request line may carry kilobytes of it; the record keeps a host name's worth.
    const host = rawHost.length > MAX_HOST_CHARS ? `${rawHost.slice(0, MAX_HOST_CHARS)}…` : rawHost;
    const key = `${host}:${port}`;
    const seen = denied.get(key);
    if (seen) {
      seen.count++;
      return;
    }
    if (denied.size >= MAX_DENIED_KEYS) return;
    const entry = { host, port, count: 1, firstAt: Date.now(), why };
    denied.set(key, entry);
    onDenied(entry);
  };

  /** Where a host:port may be reached, or why not. */
  async function decide(host, port) {
    if (!hostAllowed(host, port, allow)) return { ok: false, why: "not in the allow-list" };
    if (net.isIP(host)) return isLinkLocal(host) ? { ok: false, why: "a link-local address" } : { ok: true, address: host };
    let addresses;
    try {
      addresses = await dns.lookup(host, { all: true });
    } catch {
      return { ok: false, why: "its name does not resolve" };
    }
    // A name the list allows may still lead here or to a metadata server (a rebinding name, a
    // repository's `allow` of localtest.me): only an address the list names itself does that.
    const usable = addresses.filter((a) => !isLinkLocal(a.address) && !isLoopback(a.address));
    if (usable.length === 0) return { ok: false, why: "it resolves to a loopback or link-local address" };
    return { ok: true, address: usable[0].address };
  }

  const credentialFor = (host, port) => credentials.find((c) => hostAllowed(host, port, [c.host]));

  // Node ignores what a listener returns: a failure in an async one would be an unhandled
  // rejection, which ends the worker. The agent's request fails instead.
  const server = http.createServer(
    withFailureAnswer(
      async (req, res) => {
        let url;
        try {
          url = new URL(req.url);
        } catch {
          res.writeHead(400, { "content-type": "text/plain" }).end("agent-work egress proxy: send absolute URLs (use it as HTTP_PROXY)\n");
          return;
        }
        const target = splitHostPort(url.host, url.protocol === "https:" ? 443 : 80);
        if (url.protocol !== "http:" || !target) {
          res.writeHead(400, { "content-type": "text/plain" }).end("agent-work egress proxy: plain http:// URLs only; use CONNECT for https\n");
          return;
        }
        const verdict = await decide(target.host, target.port);
        if (!verdict.ok) {
          deny(target.host, target.port, verdict.why);
          res.writeHead(403, { "content-type": "text/plain" }).end(`agent-work: ${target.host}:${target.port} is blocked (${verdict.why})\n`);
          req.resume();
          return;
        }
        const rule = credentialFor(target.host, target.port);
        const upstream = rule ? new URL(url.pathname + url.search, rule.upstream) : url;
        const headers = { ...req.headers, host: upstream.host };
        delete headers["proxy-connection"];
        delete headers["proxy-authorization"];
        if (rule) headers[rule.header.toLowerCase()] = rule.value;
        const client = upstream.protocol === "https:" ? https : http;
        const out = client.request(
          upstream,
          {
            method: req.method,
            headers,
            ...(rule
              ? {}
              : {
                  lookup: (_h, o, cb) =>
                    o?.all ? cb(null, [{ address: verdict.address, family: net.isIP(verdict.address) }]) : cb(null, verdict.address, net.isIP(verdict.address)),
                }),
          },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
          },
        );
        out.on("error", () => {
          if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
          res.end();
        });
        req.pipe(out);
      },
      (req, res) => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
        res.end();
      },
    ),
  );

  server.on(
    "connect",
    withFailureAnswer(
      async (req, socket, head) => {
        socket.on("error", () => {});
        const target = splitHostPort(req.url ?? "", 443);
        if (!target) {
          socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
          return;
        }
        const verdict = await decide(target.host, target.port);
        if (!verdict.ok) {
          deny(target.host, target.port, verdict.why);
          socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\nagent-work: ${target.host}:${target.port} is blocked (${verdict.why})\n`);
          return;
        }
        const upstream = net.connect(target.port, verdict.address, () => {
          socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
          if (head?.length) upstream.write(head);
          upstream.pipe(socket);
          socket.pipe(upstream);
        });
        upstream.on("error", () => socket.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
        socket.on("close", () => upstream.destroy());
      },
      (req, socket) => socket.destroy(),
    ),
  );

  fs.rmSync(socketPath, { force: true });
  // A Unix socket's path holds at most 107 bytes, and a job folder deep in a home directory (or a
  // pod's volume) is longer: bind by the path relative to the cwd (the job's folder) then.
  const relative = path.relative(process.cwd(), socketPath);
  const bindPath = Buffer.byteLength(socketPath) > MAX_SOCKET_PATH && Buffer.byteLength(relative) <= MAX_SOCKET_PATH ? relative : socketPath;
  if (Buffer.byteLength(bindPath) > MAX_SOCKET_PATH)
    throw new Error(`the egress proxy's socket path is longer than ${MAX_SOCKET_PATH} bytes, even from the cwd: ${socketPath}`);
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(bindPath, resolve);
  });
  // The sandbox's user (nobody, when the worker is root) must be able to connect.
  fs.chmodSync(socketPath, 0o666);
  return {
    denied: () => [...denied.values()],
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/**
 * The forwarder that runs inside the sandbox in front of the agent: it listens on 127.0.0.1:PORT in
 * the sandbox's own network namespace (where the agent's HTTP_PROXY points), passes every
 * connection to the proxy's Unix socket, and runs the agent as its child. Written into the job's
 * folder and mounted read-only; plain Node, no imports beyond built-ins.
 */
export const FORWARDER_SOURCE = `import net from "node:net";
import { spawn } from "node:child_process";
const [socketPath, port, sep, ...argv] = process.argv.slice(2);
if (sep !== "--" || argv.length === 0) { console.error("forwarder: usage: <socket> <port> -- <argv…>"); process.exit(125); }
const server = net.createServer((inbound) => {
  const out = net.connect(socketPath);
  inbound.on("error", () => out.destroy());
  out.on("error", () => inbound.destroy());
  inbound.pipe(out);
  out.pipe(inbound);
});
server.on("error", (err) => { console.error("forwarder: " + err.message); process.exit(125); });
server.listen(Number(port), "127.0.0.1", () => {
  const child = spawn(argv[0], argv.slice(1), { stdio: "inherit" });
  child.on("error", (err) => { console.error("forwarder: cannot start the agent: " + err.message); process.exit(127); });
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 + 9 : 1)));
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(s, () => child.kill(s));
});
`;

/** `handler` as a listener whose failure is answered by `onFailure` (with the same arguments). */
function withFailureAnswer(handler, onFailure) {
  return (...args) => {
    handler(...args).catch(() => onFailure(...args));
  };
}
