import http from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Octokit } from "@octokit/core";
import { createNodeHttpFetch } from "../../src/github/node-http-fetch.js";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A local HTTP server that records what reached it and answers by path. */
async function server(answer: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void) {
  const seen: Seen[] = [];
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      answer(req, res, body);
    });
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return { seen, origin, close: () => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))) };
}

describe("the fetch Octokit calls GitHub with (node:http, kept-alive connections)", () => {
  const fetch = createNodeHttpFetch();
  let other: Awaited<ReturnType<typeof server>>;
  let main: Awaited<ReturnType<typeof server>>;

  beforeAll(async () => {
    other = await server((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
    main = await server((req, res, body) => {
      const url = req.url!;
      if (url === "/json")
        return res
          .writeHead(201, { "content-type": "application/json; charset=utf-8", "x-ratelimit-remaining": "4999" })
          .end(JSON.stringify({ id: 7, echo: body }));
      if (url === "/gzip")
        return res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" }).end(gzipSync(JSON.stringify({ zipped: true })));
      if (url === "/missing") return res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "Not Found" }));
      if (url === "/see-other") return res.writeHead(303, { location: "/json" }).end();
      if (url === "/moved-same-origin") return res.writeHead(307, { location: "/json" }).end();
      if (url === "/moved-away") return res.writeHead(301, { location: `${other.origin}/landed` }).end();
      if (url === "/slow") return void setTimeout(() => res.writeHead(200).end("late"), 5_000).unref();
      if (url === "/empty") return res.writeHead(204).end();
      res.writeHead(500).end("unexpected");
    });
  });
  afterAll(async () => {
    fetch.close();
    await main.close();
    await other.close();
  });

  it("sends the method, headers and body, and gives back status, url, headers and text as fetch does", async () => {
    const res = await fetch(`${main.origin}/json`, {
      method: "POST",
      headers: { authorization: "token abc", "content-type": "application/json" },
      body: '{"a":1}',
    });
    expect(res.status).toBe(201);
    expect(res.ok).toBe(true);
    expect(res.url).toBe(`${main.origin}/json`);
    expect(res.headers.get("X-RateLimit-Remaining")).toBe("4999");
    expect(Object.fromEntries(res.headers)).toMatchObject({ "content-type": "application/json; charset=utf-8" });
    expect(JSON.parse(await res.text())).toEqual({ id: 7, echo: '{"a":1}' });
    const seen = main.seen.at(-1)!;
    expect(seen).toMatchObject({ method: "POST", url: "/json", body: '{"a":1}' });
    expect(seen.headers.authorization).toBe("token abc");
    expect(seen.headers["content-length"]).toBe("7");
  });

  it("keeps the connection open between calls", async () => {
    await fetch(`${main.origin}/json`);
    await fetch(`${main.origin}/json`);
    expect(main.seen.at(-1)!.headers.connection).toBe("keep-alive");
  });

  it("decompresses a gzip answer", async () => {
    expect(await (await fetch(`${main.origin}/gzip`)).json()).toEqual({ zipped: true });
  });

  it("follows a 303 as a GET without the body", async () => {
    const before = main.seen.length;
    const res = await fetch(`${main.origin}/see-other`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(201);
    expect(res.redirected).toBe(true);
    expect(res.url).toBe(`${main.origin}/json`);
    expect(main.seen.slice(before).map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual(["POST /see-other {}", "GET /json "]);
  });

  it("follows a 307 on the same origin with the same method, body and authorization", async () => {
    const before = main.seen.length;
    await fetch(`${main.origin}/moved-same-origin`, { method: "PATCH", headers: { authorization: "token abc" }, body: "x" });
    const again = main.seen.slice(before)[1]!;
    expect(again).toMatchObject({ method: "PATCH", url: "/json", body: "x" });
    expect(again.headers.authorization).toBe("token abc");
  });

  it("never sends the token to another origin a redirect points at", async () => {
    const res = await fetch(`${main.origin}/moved-away`, { headers: { authorization: "token secret-installation-token", accept: "application/json" } });
    expect(res.url).toBe(`${other.origin}/landed`);
    const landed = other.seen.at(-1)!;
    expect(landed.url).toBe("/landed");
    expect(landed.headers.authorization).toBeUndefined();
    expect(landed.headers.accept).toBe("application/json");
  });

  it("stops at once when the caller aborts, with an AbortError", async () => {
    const controller = new AbortController();
    const pending = fetch(`${main.origin}/slow`, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
  });

  it("fails like fetch when nothing listens: a TypeError whose cause names the socket error", async () => {
    const closed = await server(() => undefined);
    await closed.close();
    const err = await fetch(`${closed.origin}/json`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(((err as TypeError).cause as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
  });

  it("is all Octokit needs: data parsed, 204 empty, 404 a RequestError with GitHub's message", async () => {
    const octokit = new Octokit({ baseUrl: main.origin, auth: "token abc", request: { fetch } });
    const { data, status, headers } = await octokit.request("POST /json", { a: 1 });
    expect(status).toBe(201);
    expect(data).toEqual({ id: 7, echo: '{"a":1}' });
    expect(headers["x-ratelimit-remaining"]).toBe("4999");
    expect((await octokit.request("DELETE /empty")).status).toBe(204);
    await expect(octokit.request("GET /missing")).rejects.toMatchObject({ status: 404, message: expect.stringContaining("Not Found") });
    const network = new Octokit({ baseUrl: "http://127.0.0.1:1", request: { fetch } });
    await expect(network.request("GET /json")).rejects.toMatchObject({ status: 500 });
  });
});
