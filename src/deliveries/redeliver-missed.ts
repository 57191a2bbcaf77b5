import type { Logger } from "pino";
import type { GitHub } from "../github/types.js";
import type { DeliveryAsk, DeliveryAskStore } from "../store/delivery-asks.js";
import type { DeliveryAttempt, DeliveryListing } from "./list-app-deliveries.js";
import { isHandledEvent, wouldAct, type RelevanceRules } from "./relevant-delivery.js";

export interface RedeliverLimits {
  /** Payloads fetched (`GET /app/hook/deliveries/{id}`) per pass. */
  maxInspections: number;
  /** Redelivery requests per pass. */
  maxAsks: number;
  /** Redelivery requests per delivery, ever: after that many failed redeliveries it is given up. */
  maxAsksPerDelivery: number;
  /** A redelivery asked for that has not shown up as a new attempt after this long is asked again. */
  askAgainAfterMs: number;
}

export const DEFAULT_REDELIVER_LIMITS: RedeliverLimits = { maxInspections: 100, maxAsks: 50, maxAsksPerDelivery: 3, askAgainAfterMs: 10 * 60_000 };

export interface RedeliverDeps {
  asks: DeliveryAskStore;
  /** Octokit authenticated as the App (JWT): the deliveries endpoints accept nothing else. */
  app: GitHub;
  rules: RelevanceRules;
  log: Logger;
  now: () => number;
  limits: RedeliverLimits;
}

export interface RedeliverReport {
  /** Attempts in the listing, and distinct deliveries among them with an event a handler takes. */
  listed: number;
  handled: number;
  /** Deliveries this controller recorded (as a job or a request): nothing to do. */
  reached: number;
  inspected: number;
  redelivered: number;
  /** Not ours to act on (payload), or redelivered and answered without a record. */
  ignored: number;
  /** Asked for already; the redelivery has not been attempted yet. */
  pending: number;
  gaveUp: number;
  /** A GitHub call about one delivery failed; the next pass tries it again. */
  failed: number;
  /** Left for the next pass by the per-pass caps. */
  deferred: number;
  /** Original delivery time of the oldest delivery left undone (deferred or failed). */
  oldestUndone?: number;
}

function succeeded(a: DeliveryAttempt): boolean {
  return a.statusCode >= 200 && a.statusCode < 300 && /^ok$/i.test(a.status.trim());
}

/**
 * One pass over a listing of the App's deliveries: for each delivery of an event a handler takes
 * that this controller never recorded, decide once (remembered in `delivery_asks`) whether to ask
 * GitHub to redeliver it, and ask. Redeliveries keep the original `X-GitHub-Delivery`, so the
 * handlers' delivery-id dedupe makes a redelivered delivery one job however often it arrives.
 *
 * A delivery never looked at before has its payload fetched first and is redelivered only if a
 * handler would act on it. One already asked for is asked again only when the redelivery failed
 * too (a newer failed attempt) or never showed up, at most `maxAsksPerDelivery` times.
 */
export async function redeliverMissed(deps: RedeliverDeps, listing: DeliveryListing): Promise<RedeliverReport> {
  const report: RedeliverReport = {
    listed: listing.attempts.length,
    handled: 0,
    reached: 0,
    inspected: 0,
    redelivered: 0,
    ignored: 0,
    pending: 0,
    gaveUp: 0,
    failed: 0,
    deferred: 0,
  };
  // Newest first from GitHub: the first attempt seen of a guid is its latest; the last, its first.
  const byGuid = new Map<string, { latest: DeliveryAttempt; firstAt: number }>();
  for (const attempt of listing.attempts) {
    if (!isHandledEvent(attempt.event, attempt.action)) continue;
    const seen = byGuid.get(attempt.guid);
    if (!seen) byGuid.set(attempt.guid, { latest: attempt, firstAt: attempt.deliveredAt });
    else {
      if (attempt.id > seen.latest.id) seen.latest = attempt;
      seen.firstAt = Math.min(seen.firstAt, attempt.deliveredAt);
    }
  }
  report.handled = byGuid.size;
  const guids = [...byGuid.keys()];
  const reached = await deps.asks.reached(guids);
  report.reached = reached.size;
  const asked = await deps.asks.get(guids);
  // Oldest first: they are the nearest to falling out of the list GitHub keeps.
  const todo = [...byGuid.entries()].filter(([guid]) => !reached.has(guid)).sort((a, b) => a[1].firstAt - b[1].firstAt);

  const undone = (at: number) => {
    report.oldestUndone = Math.min(report.oldestUndone ?? at, at);
  };
  let asksLeft = deps.limits.maxAsks;
  let inspectionsLeft = deps.limits.maxInspections;

  const ask = async (guid: string, latest: DeliveryAttempt, previous: DeliveryAsk | undefined, firstAt: number, payload?: unknown) => {
    if (asksLeft <= 0) {
      report.deferred += 1;
      return undone(firstAt);
    }
    if (previous && previous.asks >= deps.limits.maxAsksPerDelivery) {
      await deps.asks.setVerdict(guid, "gave-up", latest.id);
      report.gaveUp += 1;
      deps.log.warn(
        { guid, event: latest.event, action: latest.action, asks: previous.asks, status: latest.status },
        "every redelivery of this delivery failed; giving it up",
      );
      return;
    }
    // The intent first: a pass that finds it taken (another replica, a retry) does not ask again.
    if (!(await deps.asks.takeAsk(guid, previous, latest.id, issueOf(payload)))) return;
    asksLeft -= 1;
    try {
      await deps.app.request("POST /app/hook/deliveries/{delivery_id}/attempts", { delivery_id: latest.id });
      report.redelivered += 1;
      deps.log.info(
        { guid, event: latest.event, action: latest.action, attempt: latest.id, status: latest.status },
        "asked GitHub to redeliver a missed delivery",
      );
    } catch (err) {
      await deps.asks.setVerdict(guid, "ask-failed", latest.id);
      report.failed += 1;
      undone(firstAt);
      deps.log.warn({ guid, err: errorSummary(err) }, "GitHub refused the redelivery request; the next pass asks again");
    }
  };

  for (const [guid, { latest, firstAt }] of todo) {
    const previous = asked.get(guid);
    if (!previous) {
      // Not even looked at while no ask is left: the next pass would have to look again anyway.
      if (inspectionsLeft <= 0 || asksLeft <= 0) {
        report.deferred += 1;
        undone(firstAt);
        continue;
      }
      inspectionsLeft -= 1;
      let payload: unknown;
      try {
        const res = await deps.app.request("GET /app/hook/deliveries/{delivery_id}", { delivery_id: latest.id });
        payload = (res.data as { request?: { payload?: unknown } }).request?.payload;
        report.inspected += 1;
      } catch (err) {
        report.failed += 1;
        undone(firstAt);
        deps.log.warn({ guid, err: errorSummary(err) }, "could not read a delivery's payload; the next pass tries again");
        continue;
      }
      if (!wouldAct(latest.event, latest.action, payload, deps.rules)) {
        await deps.asks.setVerdict(guid, "ignored", latest.id);
        report.ignored += 1;
        continue;
      }
      await ask(guid, latest, undefined, firstAt, payload);
      continue;
    }
    switch (previous.verdict) {
      case "ignored":
      case "answered":
        report.ignored += 1;
        break;
      case "gave-up":
        report.gaveUp += 1;
        break;
      case "ask-failed":
        await ask(guid, latest, previous, firstAt);
        break;
      case "asked":
        if (latest.id > previous.attemptId) {
          if (succeeded(latest)) {
            // Redelivered and answered 2xx, yet nothing recorded: the handler had nothing to do.
            await deps.asks.setVerdict(guid, "answered", latest.id);
            report.ignored += 1;
          } else {
            await ask(guid, latest, previous, firstAt);
          }
        } else if (deps.now() - previous.askedAt >= deps.limits.askAgainAfterMs) {
          await ask(guid, latest, previous, firstAt);
        } else {
          report.pending += 1;
        }
        break;
    }
  }
  return report;
}

/** The issue or pull request a payload is about, if it names one. */
function issueOf(payload: unknown): { repoId: number; number: number } | undefined {
  const p = payload as { repository?: { id?: unknown }; issue?: { number?: unknown } } | undefined;
  const repoId = p?.repository?.id;
  const number = p?.issue?.number;
  return typeof repoId === "number" && typeof number === "number" ? { repoId, number } : undefined;
}

/** Status and message of an Octokit error, never its request (which carries the JWT). */
export function errorSummary(err: unknown): { status?: number; message: string } {
  const e = err as { status?: number; message?: string };
  return { ...(typeof e?.status === "number" ? { status: e.status } : {}), message: String(e?.message ?? err).slice(0, 300) };
}
