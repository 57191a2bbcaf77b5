import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { readCappedBody } from "../../src/ingress/read-capped-body.js";
import { youngGarbageCollector } from "../../src/ingress/young-garbage-collector.js";

const MB = 1024 * 1024;
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Sends `total` bytes in 64 KB chunks (what Node's parser hands over) through a stand-in request. */
async function readBody(total: number, maxBytes: number) {
  const spillDir = mkdtempSync(path.join(tmpdir(), "aw-capped-"));
  dirs.push(spillDir);
  const req = new PassThrough();
  let collections = 0;
  const reading = readCappedBody(req as unknown as IncomingMessage, {
    maxBytes,
    memoryBytes: MB,
    spillDir,
    onChunk: () => undefined,
    collectGarbage: () => collections++,
  });
  (async () => {
    for (let sent = 0; sent < total; sent += 64 * 1024) {
      if (!req.write(Buffer.alloc(Math.min(64 * 1024, total - sent), 0x61))) await new Promise((resolve) => req.once("drain", resolve));
    }
    req.end();
  })().catch(() => undefined);
  const body = await reading;
  if (body.ok) await body.discard();
  return { body, collections, left: readdirSync(spillDir) };
}

describe("reading a webhook body", () => {
  it("frees the chunks already read every 4 MB, so a stranger's big body leaves no pile of dead copies", async () => {
    const big = await readBody(10 * MB, 25 * MB);
    expect(big.body).toMatchObject({ ok: true, bytes: 10 * MB });
    expect(big.collections).toBe(2);
    expect(big.left).toEqual([]);
  });

  it("collects up to the cap and no further once a body is refused as too large", async () => {
    const refused = await readBody(40 * MB, 25 * MB);
    expect(refused.body).toMatchObject({ ok: false, reason: "too-large" });
    expect(refused.collections).toBe(6);
    expect(refused.left).toEqual([]);
  });

  it("never collects for the few kilobytes of a usual delivery", async () => {
    expect((await readBody(20 * 1024, 25 * MB)).collections).toBe(0);
  });
});

describe("the young garbage collector", () => {
  it("frees buffers nothing holds any more, without putting gc on the process's global", () => {
    const collect = youngGarbageCollector();
    collect();
    // 32 dead 1 MB buffers; a collection V8 makes by itself meanwhile (a loaded machine) frees some
    // of them before they are counted, so the pile is made again until it is there to be freed.
    let before = 0;
    let piled = 0;
    for (let attempt = 0; attempt < 5 && piled - before <= 16 * MB; attempt++) {
      collect();
      before = process.memoryUsage().arrayBuffers;
      for (let i = 0; i < 32; i++) Buffer.alloc(MB, i).length;
      piled = process.memoryUsage().arrayBuffers;
    }
    collect();
    const after = process.memoryUsage().arrayBuffers;
    expect((piled - before) / MB).toBeGreaterThan(16);
    expect((piled - after) / MB).toBeGreaterThan(16);
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
