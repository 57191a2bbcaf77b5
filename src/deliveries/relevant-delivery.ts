import { parseCommand } from "../commands/parse-command.js";
import { CHECK_NAME } from "../pipeline/ensure-status-surfaces.js";
import { handledPayloads, type HandledEvent } from "../handlers/handled-payloads.js";

/**
 * `event.action` of every delivery a handler in src/app.ts acts on. A test registers the app and
 * checks this list against what it subscribes to, so a new handler cannot be forgotten here. It is
 * read from the one table that also checks their payloads (src/handlers/handled-payloads.ts).
 */
export const HANDLED_EVENTS = Object.keys(handledPayloads) as HandledEvent[];

export function isHandledEvent(event: string, action: string | null): boolean {
  return (HANDLED_EVENTS as readonly string[]).includes(action ? `${event}.${action}` : event);
}

export interface RelevanceRules {
  triggerLabel: string;
  appId: number;
}

/**
 * Whether a handler would record something for this payload (the same tests the handlers make
 * before they write): our label or a size variant of it, an `/agent` comment or review, a button on our
 * own check run; from a person, on an installation. Used before asking GitHub to redeliver
 * something that did reach a server, so an outage is not followed by a redelivery of every
 * comment and label the App saw meanwhile.
 */
export function wouldAct(event: string, action: string | null, payload: unknown, rules: RelevanceRules): boolean {
  if (!payload || typeof payload !== "object") return false;
  const p = payload as Record<string, any>;
  if (p.sender?.type === "Bot" || !p.installation?.id) return false;
  switch (action ? `${event}.${action}` : event) {
    case "issues.labeled": {
      const name = typeof p.label?.name === "string" ? (p.label.name as string) : "";
      if (name === rules.triggerLabel) return true;
      const size = name.startsWith(`${rules.triggerLabel}:`) ? name.slice(rules.triggerLabel.length + 1) : "";
      return /^[a-z0-9][a-z0-9._-]{0,39}$/i.test(size);
    }
    case "issue_comment.created":
      return p.comment?.user?.type !== "Bot" && parseCommand(p.comment?.body) !== null;
    case "pull_request_review_comment.created":
      return p.comment?.user?.type !== "Bot" && typeof p.comment?.pull_request_review_id === "number" && parseCommand(p.comment?.body) !== null;
    case "pull_request_review.submitted":
      return p.review?.user?.type !== "Bot" && parseCommand(p.review?.body) !== null;
    case "check_run.requested_action":
    case "check_run.rerequested":
      return p.check_run?.app?.id === rules.appId && p.check_run?.name === CHECK_NAME;
    default:
      return false;
  }
}
