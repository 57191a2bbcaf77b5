import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, readdirSync, rmSync, statSync, type WriteStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import path from "node:path";

export interface ReadBodyOptions {
  /** More than this is refused (`too-large`), whatever Content-Length said. */
  maxBytes: number;
  /** Bytes held in memory; the rest of a bigger body goes to a file in `spillDir`. */
  memoryBytes: number;
  /** A folder only this controller writes (created 0700 on first use). */
  spillDir: string;
  /** Sees every chunk as it arrives (the signature is computed on the way in). */
  onChunk(chunk: Buffer): void;
  /** Frees the chunks already read (young-garbage-collector.ts); called every `collectEveryBytes`. */
  collectGarbage?(): void;
  /** 4 MB unless told. */
  collectEveryBytes?: number;
  /**
   * What every body being read at once may hold together, in memory and on disk (shared by the
   * ingress's requests): past it this body is refused `busy`, so a crowd of strangers' uploads
   * costs at most these bytes, not one `maxBytes` per connection they open.
   */
  budget?: { memory: BodyBudget; disk: BodyBudget };
}

/** Bytes that the bodies being read share; each takes before it holds and gives back when done. */
export class BodyBudget {
  private used = 0;
  constructor(readonly limit: number) {}
  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }
  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
  get inUse(): number {
    return this.used;
  }
}

export type CappedBody =
  | {
      ok: true;
      bytes: number;
      /** The whole body, joined; call only once it is known to be wanted (signed). */
      read(): Promise<Buffer>;
      /** Removes what was written to disk; always call it. */
      discard(): Promise<void>;
    }
  /** More than `maxBytes` arrived: nothing is kept, and the stream is no longer read. */
  | { ok: false; reason: "too-large"; bytes: number }
  /** The client went away, or the server's request timeout closed the connection first. */
  | { ok: false; reason: "aborted"; bytes: number }
  /** The spill file could not be written (a full disk). */
  | { ok: false; reason: "spill-failed"; bytes: number }
  /** The bodies already being read hold the whole shared budget: nothing is kept, reading stops. */
  | { ok: false; reason: "busy"; bytes: number };

/**
 * Reads a request body, counting bytes as they arrive: the count, not the Content-Length header,
 * decides (a chunked body has none, and a header can lie). Past `maxBytes` everything read is
 * dropped and reading stops. Only the first `memoryBytes` stay in memory: the rest is written to a
 * file, so a stranger's 25 MB (or ten of them at once) costs disk for a few seconds rather than the
 * controller's memory, and the body is read back only after its signature matched. Node copies
 * every chunk, and those copies are freed every few megabytes (`collectGarbage`), not all at once
 * at V8's next collection.
 */
export function readCappedBody(req: IncomingMessage, options: ReadBodyOptions): Promise<CappedBody> {
  const collectEvery = options.collectEveryBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve) => {
    const memory: Buffer[] = [];
    let inMemory = 0;
    let bytes = 0;
    let file: { path: string; stream: WriteStream } | undefined;
    let settled = false;
    // What this body holds of the shared budget, given back once (when it fails, or at discard()).
    let heldMemory = 0;
    let heldDisk = 0;
    const giveBack = () => {
      options.budget?.memory.give(heldMemory);
      options.budget?.disk.give(heldDisk);
      heldMemory = 0;
      heldDisk = 0;
    };

    const removeFile = async () => {
      giveBack();
      if (!file) return;
      file.stream.destroy();
      await rm(file.path, { force: true });
    };
    const fail = (reason: "too-large" | "aborted" | "spill-failed" | "busy") => {
      if (settled) return;
      settled = true;
      detach();
      memory.length = 0;
      giveBack();
      if (reason !== "aborted") req.pause();
      void removeFile().finally(() => resolve({ ok: false, reason, bytes }));
    };
    const spillTo = (): WriteStream => {
      if (!file) {
        mkdirSync(options.spillDir, { recursive: true, mode: 0o700 });
        const target = path.join(options.spillDir, `${Date.now()}-${randomBytes(8).toString("hex")}.body`);
        const stream = createWriteStream(target, { flags: "wx", mode: 0o600 });
        file = { path: target, stream };
        stream.on("error", () => fail("spill-failed"));
      }
      return file.stream;
    };
    const onData = (chunk: Buffer) => {
      const before = bytes;
      bytes += chunk.length;
      // The chunks read so far are dead once hashed and written; V8 would keep them until much later.
      if (options.collectGarbage && Math.floor(bytes / collectEvery) > Math.floor(before / collectEvery)) options.collectGarbage();
      if (bytes > options.maxBytes) return fail("too-large");
      options.onChunk(chunk);
      if (!file && inMemory + chunk.length <= options.memoryBytes && (options.budget?.memory.take(chunk.length) ?? true)) {
        heldMemory += chunk.length;
        memory.push(chunk);
        inMemory += chunk.length;
        return;
      }
      if (options.budget && !options.budget.disk.take(chunk.length)) return fail("busy");
      heldDisk += chunk.length;
      const stream = spillTo();
      // The disk sets the pace: no more than the stream's own buffer waits in memory.
      if (!stream.write(chunk)) {
        req.pause();
        stream.once("drain", () => {
          if (!settled) req.resume();
        });
      }
    };
    const onEnd = () => {
      if (settled) return;
      settled = true;
      detach();
      const done = (): void =>
        resolve({
          ok: true,
          bytes,
          read: async () => (file ? Buffer.concat([...memory, await readFile(file.path)], bytes) : Buffer.concat(memory, bytes)),
          discard: removeFile,
        });
      if (!file) return done();
      file.stream.once("finish", done);
      file.stream.once("error", () => void removeFile().finally(() => resolve({ ok: false, reason: "spill-failed", bytes })));
      file.stream.end();
    };
    const onClose = () => fail("aborted");
    const detach = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onClose);
    // An error is followed by `close`; listening keeps it from being an uncaught exception.
    req.on("error", () => undefined);
  });
}

/**
 * Removes bodies a previous process left in `spillDir` when it died mid-request. Only old ones: a
 * request lasts at most the request timeout (≤ 300 s), so a file older than that is nobody's.
 */
export function removeStaleSpills(spillDir: string, olderThanMs: number, now = Date.now()): void {
  let names: string[];
  try {
    names = readdirSync(spillDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.endsWith(".body")) continue;
    const file = path.join(spillDir, name);
    try {
      if (now - statSync(file).mtimeMs > olderThanMs) rmSync(file, { force: true });
    } catch {
      // Gone meanwhile.
    }
  }
}
