import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";

/**
 * An async request handler for a fake server. Node ignores what a listener returns, so a handler
 * that throws would leave the request hanging until the test times out; this answers 500 with the
 * error instead, which the test then reports.
 */
export function answerAsync(handler: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>): RequestListener {
  return (req, res) => {
    handler(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`fake server failed: ${err instanceof Error ? err.stack : String(err)}`);
    });
  };
}
