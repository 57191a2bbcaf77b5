/**
 * The webhook bodies being read at once share one budget of memory and disk (webhook-ingress.ts,
 * BODY_BUDGET): a crowd of strangers' uploads costs at most that, not 25 MB per connection. The
 * endpoint is served by a real HTTP server; the budget is made small so a test can fill it.
 */
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer, request, type ClientRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { webhookIngress } from "../../src/ingress/webhook-ingress.js";
import { pinoLogger } from "../../src/redact/redacting-logger.js";

const MB = 1024 * 1024;
const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  // An upload a failed test left open must not keep the server (and the run) waiting.
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => (s.close(resolve), s.closeAllConnections()))));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Starts sending `bytes` of an unsigned body in chunks, without ending it until `finish()`. */
function openUpload(url: string): {
  req: ClientRequest;
  answer: Promise<{ status: number; headers: Record<string, unknown> }>;
  send(bytes: number): void;
  finish(): void;
} {
  const req = request(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "issues",
      "x-github-delivery": `stranger-${randomBytes(4).toString("hex")}`,
      "x-hub-signature-256": "sha256=00",
    },
  });
  const answer = new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
    req.on("response", (res) => {
      res.resume();
      resolve({ status: res.statusCode!, headers: res.headers });
    });
    // After a refusal the server cuts the upload short: the client's write then fails, as expected.
    req.on("error", (err) => (req.writableEnded ? undefined : reject(err)));
  });
  answer.catch(() => undefined);
  return {
    req,
    answer,
    send: (bytes) => {
      for (let sent = 0; sent < bytes; sent += 64 * 1024) req.write(Buffer.alloc(Math.min(64 * 1024, bytes - sent), 0x61));
    },
    finish: () => req.end(),
  };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}

it("refuses a body with 503 while the bodies already being read hold the shared budget, and takes deliveries again once they are done", async () => {
  const spillDir = mkdtempSync(path.join(tmpdir(), "aw-body-budget-"));
  dirs.push(spillDir);
  const secret = "budget-secret";
  const lines: string[] = [];
  const received: string[] = [];
  const ingress = webhookIngress({
    path: "/hooks",
    secret,
    spillDir,
    bodyBudget: { memoryBytes: 1 * MB, diskBytes: 2 * MB },
    receive: async (delivery) => {
      received.push(delivery.id);
    },
    checkPayload: () => ({ ok: true }),
    log: pinoLogger({ write: (line: string) => lines.push(line) }, { level: "info" }),
  });
  const server = createServer((req, res) => void ingress(req, res));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  const spilledBytes = () => (existsSync(spillDir) ? readdirSync(spillDir).reduce((n, f) => n + statSync(path.join(spillDir, f)).size, 0) : 0);

  // A stranger's upload in progress holds the whole memory budget and most of the disk's.
  const first = openUpload(url);
  first.send(2.5 * MB);
  await until(() => spilledBytes() >= 1.5 * MB);

  // A second one now finds no room: refused at once, nothing of it kept.
  const second = openUpload(url);
  second.send(1 * MB);
  second.finish();
  const refused = await second.answer;
  expect(refused.status).toBe(503);
  expect(refused.headers["retry-after"]).toBe("5");
  expect(lines.some((l) => l.includes("too many webhook bodies are being read at once"))).toBe(true);

  // The first ends unsigned (401); its bytes are given back and its spill file removed.
  first.finish();
  expect((await first.answer).status).toBe(401);
  await until(() => spilledBytes() === 0);

  // One that the stranger abandons half-way gives its bytes back too.
  const abandoned = openUpload(url);
  abandoned.send(2 * MB);
  await until(() => spilledBytes() >= 1 * MB);
  abandoned.req.destroy();
  await until(() => spilledBytes() === 0);

  // A signed delivery of the same size as the first is taken: the budget is whole again.
  const body = Buffer.from(JSON.stringify({ action: "created", padding: "x".repeat(2.5 * MB) }));
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-github-delivery": "signed-after",
        "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
      },
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    req.end(body);
  });
  expect(status).toBe(200);
  expect(received).toEqual(["signed-after"]);
  expect(readdirSync(spillDir)).toEqual([]);
});
