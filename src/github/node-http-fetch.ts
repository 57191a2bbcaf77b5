import http from "node:http";
import https from "node:https";
import { promisify } from "node:util";
import zlib from "node:zlib";

/**
 * The `fetch` Octokit calls GitHub with, on node:http(s) with kept-alive connections instead of
 * Node's built-in fetch (undici). Under a burst the built-in fetch was the largest single part of
 * the controller's CPU per job (WHATWG streams, Request/Response objects and header guards for
 * every call, ~15 calls a job); this does one http.request and buffers the answer, which is all
 * Octokit reads (status, url, headers, text). It follows redirects the way fetch does — 303, and
 * 301/302 after a POST, become a GET without a body — and, like fetch, drops the Authorization
 * header when a redirect leaves the origin, so a token never reaches another host.
 */
export type FetchLike = (url: string, init?: FetchInit) => Promise<FetchedResponse>;

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | null;
  redirect?: "follow" | "manual" | "error";
  signal?: AbortSignal | null;
}

const MAX_REDIRECTS = 20;
const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const brotli = promisify(zlib.brotliDecompress);

/** The part of a fetch Response that @octokit/request reads. */
export class FetchedResponse {
  readonly ok: boolean;
  readonly redirected: boolean;
  readonly headers: ResponseHeaders;
  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly url: string,
    headers: http.IncomingHttpHeaders,
    private readonly bytes: Buffer,
    redirected: boolean,
  ) {
    this.ok = status >= 200 && status < 300;
    this.redirected = redirected;
    this.headers = new ResponseHeaders(headers);
  }
  async text(): Promise<string> {
    return this.bytes.toString("utf8");
  }
  async json(): Promise<unknown> {
    return JSON.parse(this.bytes.toString("utf8"));
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.bytes.buffer.slice(this.bytes.byteOffset, this.bytes.byteOffset + this.bytes.byteLength) as ArrayBuffer;
  }
  /** For `parseSuccessResponseBody: false`: the body as a web stream, as fetch gives it. */
  get body(): ReadableStream<Uint8Array> {
    const bytes = this.bytes;
    return new ReadableStream({
      start(controller) {
        if (bytes.length > 0) controller.enqueue(new Uint8Array(bytes));
        controller.close();
      },
    });
  }
}

/** Lower-case names, several values joined with ", " (set-cookie too), as fetch's Headers does. */
export class ResponseHeaders {
  private readonly map = new Map<string, string>();
  constructor(raw: http.IncomingHttpHeaders) {
    for (const [name, value] of Object.entries(raw)) {
      if (value !== undefined) this.map.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
  }
  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.map.entries();
  }
  entries(): IterableIterator<[string, string]> {
    return this.map.entries();
  }
  forEach(fn: (value: string, name: string) => void): void {
    this.map.forEach(fn);
  }
}

/** Thrown like fetch's network errors: a TypeError whose cause is the socket's error. */
function networkError(cause: unknown): TypeError {
  return new TypeError("fetch failed", { cause });
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === "AbortError") return reason;
  return new DOMException("This operation was aborted", "AbortError");
}

export interface NodeHttpFetchOptions {
  /** Most connections kept open to one host (GitHub allows 100 concurrent requests). */
  maxSockets?: number;
  /** An idle kept-alive connection is closed after this long (GitHub closes its own sooner). */
  idleMs?: number;
}

/** One pair of agents per controller; connections are reused across installations and calls. */
export function createNodeHttpFetch(options: NodeHttpFetchOptions = {}): FetchLike & { close(): void } {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 100, timeout: options.idleMs ?? 30_000, scheduling: "lifo" as const };
  const agents = { "http:": new http.Agent(agentOptions), "https:": new https.Agent(agentOptions) };

  const once = (url: URL, init: FetchInit, body: string | Uint8Array | null | undefined): Promise<{ res: http.IncomingMessage; bytes: Buffer }> =>
    new Promise((resolve, reject) => {
      const signal = init.signal ?? undefined;
      if (signal?.aborted) return reject(abortError(signal));
      const transport = url.protocol === "https:" ? https : url.protocol === "http:" ? http : undefined;
      if (!transport) return reject(networkError(new Error(`unsupported protocol ${url.protocol}`)));
      const headers: Record<string, string> = { "accept-encoding": "gzip, deflate, br", ...init.headers };
      if (body !== undefined && body !== null) headers["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength);
      const req = transport.request(url, { method: init.method ?? "GET", headers, agent: agents[url.protocol as "http:" | "https:"] });
      const onAbort = () => req.destroy(abortError(signal!));
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => signal?.removeEventListener("abort", onAbort);
      req.on("error", (err) => {
        done();
        reject(err.name === "AbortError" ? err : networkError(err));
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => {
          done();
          reject(err.name === "AbortError" ? err : networkError(err));
        });
        res.on("end", () => {
          done();
          decode(res.headers["content-encoding"], Buffer.concat(chunks)).then(
            (bytes) => resolve({ res, bytes }),
            (err) => reject(networkError(err)),
          );
        });
      });
      req.end(body ?? undefined);
    });

  const nodeHttpFetch: FetchLike = async function nodeHttpFetch(input, init = {}) {
    let url = new URL(input);
    let method = (init.method ?? "GET").toUpperCase();
    let body = init.body;
    let headers = { ...init.headers };
    for (let redirects = 0; ; redirects++) {
      const { res, bytes } = await once(url, { ...init, method, headers }, body);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      const redirect = [301, 302, 303, 307, 308].includes(status) && location !== undefined;
      if (!redirect || init.redirect === "manual") {
        return new FetchedResponse(status, res.statusMessage ?? "", url.href, res.headers, bytes, redirects > 0);
      }
      if (init.redirect === "error") throw networkError(new Error(`unexpected redirect to ${location}`));
      if (redirects >= MAX_REDIRECTS) throw networkError(new Error("too many redirects"));
      const next = new URL(location, url);
      if (status === 303 ? method !== "HEAD" : (status === 301 || status === 302) && method === "POST") {
        method = "GET";
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !/^content-/i.test(name)));
      }
      if (next.origin !== url.origin) headers = Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== "authorization"));
      url = next;
    }
  };
  /** Closes the kept-alive connections (the controller is stopping). */
  const close = () => {
    agents["http:"].destroy();
    agents["https:"].destroy();
  };
  return Object.assign(nodeHttpFetch, { close });
}

async function decode(encoding: string | undefined, bytes: Buffer): Promise<Buffer> {
  if (!encoding || encoding === "identity" || bytes.length === 0) return bytes;
  if (encoding === "gzip" || encoding === "x-gzip") return gunzip(bytes);
  if (encoding === "deflate") return inflate(bytes);
  if (encoding === "br") return brotli(bytes);
  return bytes;
}
