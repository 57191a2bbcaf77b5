import type { GitHub } from "../github/types.js";

/** One attempt to deliver one event, as `GET /app/hook/deliveries` lists it (fields we read). */
export interface DeliveryAttempt {
  /** This attempt's id (a redelivery is a new attempt with a new id). */
  id: number;
  /** `X-GitHub-Delivery`, shared by the first attempt and every redelivery of it. */
  guid: string;
  deliveredAt: number;
  redelivery: boolean;
  status: string;
  statusCode: number;
  event: string;
  action: string | null;
}

export interface DeliveryListing {
  /** Attempts delivered at or after `coveredFrom`, newest first. */
  attempts: DeliveryAttempt[];
  /**
   * From when the listing is complete: the window's start when the list reached it (or ended,
   * since GitHub keeps a delivery for the whole window), else the oldest attempt read before the
   * page cap stopped it.
   */
  coveredFrom: number;
  pages: number;
  /** The page cap stopped the listing before the window's start. */
  truncated: boolean;
}

export interface ListOptions {
  /** Oldest delivery time looked at (epoch ms). */
  since: number;
  maxPages: number;
  now: number;
}

/** The `cursor` of the Link header's `rel="next"` URL, if there is a next page. */
export function nextCursor(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(",")) {
    const m = /<([^>]+)>\s*;\s*rel="next"/.exec(part);
    if (!m) continue;
    try {
      return new URL(m[1]!).searchParams.get("cursor") ?? undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Lists the App's webhook deliveries, newest first (GitHub's order), as the App (a JWT), a page of
 * 100 at a time along the `cursor` GitHub hands out, until the window's start or `maxPages`.
 */
export async function listAppDeliveries(app: GitHub, options: ListOptions): Promise<DeliveryListing> {
  const attempts: DeliveryAttempt[] = [];
  let cursor: string | undefined;
  let pages = 0;
  let oldest = options.now;
  while (pages < options.maxPages) {
    const res = await app.request("GET /app/hook/deliveries", { per_page: 100, ...(cursor ? { cursor } : {}) });
    pages += 1;
    let reachedWindowStart = false;
    for (const item of res.data) {
      const deliveredAt = Date.parse(item.delivered_at);
      if (!Number.isFinite(deliveredAt)) continue;
      if (deliveredAt < options.since) {
        reachedWindowStart = true;
        break;
      }
      oldest = Math.min(oldest, deliveredAt);
      attempts.push({
        id: Number(item.id),
        guid: String(item.guid),
        deliveredAt,
        redelivery: Boolean(item.redelivery),
        status: String(item.status ?? ""),
        statusCode: Number(item.status_code ?? 0),
        event: String(item.event ?? ""),
        action: item.action ?? null,
      });
    }
    cursor = nextCursor(res.headers.link);
    if (reachedWindowStart || !cursor || res.data.length === 0) return { attempts, coveredFrom: options.since, pages, truncated: false };
  }
  return { attempts, coveredFrom: oldest, pages, truncated: true };
}
