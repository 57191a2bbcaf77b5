/**
 * Forwards the webhooks GitHub sends to a smee.io channel (WEBHOOK_PROXY_URL) to this controller,
 * for a machine GitHub cannot reach. The channel is a Server-Sent Events stream: each `message`
 * event's data is one delivery as smee.io received it — its headers as top-level keys, `body` the
 * parsed JSON, `query`, `timestamp` — and it is POSTed to `target` with those headers, so the
 * controller checks its signature exactly as for a direct delivery. A dropped stream is reopened;
 * what smee.io received while it was down is not sent again (GitHub saw smee.io accept it), so
 * redeliver such a delivery from the app's Recent Deliveries.
 */
export interface SmeeForwarder {
  /** Stops forwarding and closes the stream. */
  close(): void;
}

export interface ForwardSmeeOptions {
  /** The channel, e.g. https://smee.io/AbCdEf123. */
  source: string;
  /** Where deliveries go, e.g. http://127.0.0.1:3000/api/github/webhooks. */
  target: string;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  fetch?: typeof fetch;
  /** First wait before reopening a dropped stream; doubles up to 30 s while it keeps failing. */
  retryMs?: number;
}

/** A delivery larger than GitHub ever sends (25 MB, its cap) is not one: drop the stream instead. */
const MAX_EVENT_BYTES = 26 * 1024 * 1024;
/** Not forwarded: smee.io's own fields, and headers that describe the hop to smee.io rather than the delivery. */
const NOT_HEADERS = new Set(["body", "query", "timestamp", "host", "content-length", "connection", "transfer-encoding", "accept-encoding"]);

export function forwardSmeeChannel(options: ForwardSmeeOptions): SmeeForwarder {
  const doFetch = options.fetch ?? fetch;
  const stop = new AbortController();
  const firstRetry = options.retryMs ?? 1000;
  let retry = firstRetry;

  async function deliver(data: string): Promise<void> {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(data) as Record<string, unknown>;
    } catch {
      options.log.warn({}, "smee.io sent an event that is not JSON; skipped");
      return;
    }
    if (!("body" in event)) return;
    const headers: Record<string, string> = { "content-type": "application/json" };
    for (const [name, value] of Object.entries(event)) {
      if (!NOT_HEADERS.has(name.toLowerCase()) && (typeof value === "string" || typeof value === "number")) headers[name.toLowerCase()] = String(value);
    }
    const what = { event: headers["x-github-event"], deliveryId: headers["x-github-delivery"] };
    try {
      const res = await doFetch(options.target, { method: "POST", headers, body: JSON.stringify(event.body), signal: stop.signal });
      await res.arrayBuffer();
      options.log.info({ ...what, status: res.status }, "webhook forwarded from the smee.io channel");
    } catch (err) {
      if (!stop.signal.aborted)
        options.log.warn({ ...what, err: err instanceof Error ? err.message : String(err) }, "could not forward a webhook from the smee.io channel");
    }
  }

  /** Reads one connection to the end; resolves when the stream ends or fails. */
  async function listen(): Promise<void> {
    const res = await doFetch(options.source, { headers: { accept: "text/event-stream" }, signal: stop.signal });
    if (!res.ok || !res.body) throw new Error(`the channel answered ${res.status}`);
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, "\n");
      if (buffered.length > MAX_EVENT_BYTES) throw new Error("an event larger than any webhook");
      for (let end = buffered.indexOf("\n\n"); end !== -1; end = buffered.indexOf("\n\n")) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        let type = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (type === "ready") {
          retry = firstRetry;
          options.log.info({}, "forwarding webhooks from the smee.io channel in WEBHOOK_PROXY_URL");
        } else if (type === "message" && data.length > 0) {
          // One at a time, in the order GitHub sent them.
          await deliver(data.join("\n"));
        }
      }
    }
  }

  void (async () => {
    while (!stop.signal.aborted) {
      try {
        await listen();
        if (!stop.signal.aborted) options.log.warn({}, "the smee.io channel closed its stream; reopening it");
      } catch (err) {
        if (stop.signal.aborted) break;
        options.log.warn(
          { err: err instanceof Error ? err.message : String(err), retryMs: retry },
          "cannot read the smee.io channel in WEBHOOK_PROXY_URL; trying again",
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retry);
        stop.signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
      retry = Math.min(retry * 2, 30_000);
    }
  })();

  return { close: () => stop.abort() };
}
