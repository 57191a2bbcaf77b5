import type { IncomingMessage } from "node:http";

export type CappedBody =
  | { ok: true; chunks: Buffer[]; bytes: number }
  /** More than `maxBytes` arrived: nothing is kept, and the stream is no longer read. */
  | { ok: false; reason: "too-large"; bytes: number }
  /** The client went away or the server's request timeout closed the connection first. */
  | { ok: false; reason: "aborted"; bytes: number };

/**
 * Reads a request body, counting bytes as they arrive: the count, not the Content-Length header,
 * decides (a chunked body has none, and a header can lie). Past `maxBytes` the chunks already read
 * are dropped and reading stops, so at most `maxBytes` of one request is ever held. The chunks are
 * not joined here: the caller checks the signature over them first and joins only a signed body.
 */
export function readCappedBody(req: IncomingMessage, maxBytes: number): Promise<CappedBody> {
  return new Promise((resolve) => {
    let chunks: Buffer[] = [];
    let bytes = 0;
    let settled = false;
    const finish = (result: CappedBody) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        chunks = [];
        req.pause();
        finish({ ok: false, reason: "too-large", bytes });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, chunks, bytes });
    const onClose = () => finish({ ok: false, reason: "aborted", bytes });
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onClose);
    // An error is followed by `close`; listening keeps it from being an uncaught exception.
    req.on("error", () => undefined);
  });
}
