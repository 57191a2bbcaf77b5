/**
 * A stand-in for smee.io on 127.0.0.1, speaking its protocol: `HEAD /new` redirects to a fresh
 * channel; `GET /<channel>` (text/event-stream) sends `ready`, then one `message` event per
 * delivery whose data is the request's headers as top-level keys plus `body` (parsed JSON),
 * `query` and `timestamp` — what smee.io sends for every webhook GitHub POSTs to the channel.
 */
import { randomBytes } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeSmee {
  url: string;
  /** Channels made through `/new`, in order. */
  made: string[];
  /** Resolves once `channel` has a listener (it connected and got `ready`). */
  listening(channel: string): Promise<void>;
  /** What GitHub's POST to the channel becomes: one event to every listener. */
  send(channel: string, headers: Record<string, string>, body: unknown): void;
  /** Ends every open stream, as smee.io does now and then. */
  drop(): void;
  close(): Promise<void>;
}

export async function startFakeSmee(): Promise<FakeSmee> {
  const listeners = new Map<string, Set<ServerResponse>>();
  const waiting = new Map<string, (() => void)[]>();
  const made: string[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/new") {
      const channel = `${url}/${randomBytes(8).toString("hex")}`;
      made.push(channel);
      res.writeHead(307, { location: channel }).end();
      return;
    }
    if (req.method !== "GET" || !/text\/event-stream/.test(req.headers.accept ?? "")) {
      res.writeHead(404).end();
      return;
    }
    const channel = `${url}${path}`;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write("event: ready\ndata: {}\n\n");
    const set = listeners.get(channel) ?? new Set();
    listeners.set(channel, set.add(res));
    res.on("close", () => set.delete(res));
    for (const wake of waiting.get(channel) ?? []) wake();
    waiting.delete(channel);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    made,
    listening: (channel) =>
      (listeners.get(channel)?.size ?? 0) > 0 ? Promise.resolve() : new Promise((resolve) => waiting.set(channel, [...(waiting.get(channel) ?? []), resolve])),
    send(channel, headers, body) {
      const data = JSON.stringify({
        ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
        host: "smee.io",
        body,
        query: {},
        timestamp: Date.now(),
      });
      for (const res of listeners.get(channel) ?? []) res.write(`data: ${data}\n\n`);
    },
    drop() {
      for (const set of listeners.values()) {
        for (const res of set) res.end();
        set.clear();
      }
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
