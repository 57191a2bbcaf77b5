import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { agentWorkApp, type AppDeps } from "../../src/app.js";
import { nextCursor } from "../../src/deliveries/list-app-deliveries.js";
import { HANDLED_EVENTS, isHandledEvent, wouldAct } from "../../src/deliveries/relevant-delivery.js";
import { checkRunPayload, commentPayload, labeledPayload, reviewCommentPayload, reviewPayload } from "../support/payloads.js";

const rules = { triggerLabel: "agent-work", appId: 1234 };
const cloneUrl = "https://example.invalid/x.git";

describe("which deliveries are worth asking GitHub for again", () => {
  it("covers exactly the events the app subscribes to", async () => {
    const subscribed: string[] = [];
    const app = { on: (name: string | string[]) => subscribed.push(...[name].flat()) };
    const deps = { config: { appId: 1234, triggerLabel: "agent-work" } } as unknown as AppDeps;
    await agentWorkApp(deps, () => undefined)(app as never, { addHandler: () => undefined } as never);
    expect([...subscribed].sort()).toEqual([...HANDLED_EVENTS].sort());
    expect(isHandledEvent("issues", "labeled")).toBe(true);
    expect(isHandledEvent("issues", "opened")).toBe(false);
    expect(isHandledEvent("push", null)).toBe(false);
  });

  it("is subscribed to in the App's manifest, event by event", () => {
    const manifest = parse(readFileSync(new URL("../../app.yml", import.meta.url), "utf8")) as { default_events: string[] };
    const events = new Set(HANDLED_EVENTS.map((e) => e.split(".")[0]!));
    expect([...events].filter((e) => !manifest.default_events.includes(e))).toEqual([]);
  });

  it("is our label or a size of it, from a person", () => {
    expect(wouldAct("issues", "labeled", labeledPayload({ cloneUrl }), rules)).toBe(true);
    expect(wouldAct("issues", "labeled", labeledPayload({ cloneUrl, label: "agent-work:large" }), rules)).toBe(true);
    expect(wouldAct("issues", "labeled", labeledPayload({ cloneUrl, label: "bug" }), rules)).toBe(false);
    expect(wouldAct("issues", "labeled", labeledPayload({ cloneUrl, label: "agent-work:" }), rules)).toBe(false);
    expect(wouldAct("issues", "labeled", labeledPayload({ cloneUrl, senderType: "Bot" }), rules)).toBe(false);
  });

  it("is an /agent command from a person, or a button on our own check run", () => {
    expect(wouldAct("issue_comment", "created", commentPayload({ cloneUrl, body: "/agent run fix it" }), rules)).toBe(true);
    expect(wouldAct("issue_comment", "created", commentPayload({ cloneUrl, body: "/agent stop" }), rules)).toBe(true);
    expect(wouldAct("issue_comment", "created", commentPayload({ cloneUrl, body: "nice work" }), rules)).toBe(false);
    expect(wouldAct("issue_comment", "created", commentPayload({ cloneUrl, body: "/agent run", senderType: "Bot" }), rules)).toBe(false);
    expect(wouldAct("check_run", "requested_action", checkRunPayload({ action: "requested_action", jobId: "j1", appId: 1234 }), rules)).toBe(true);
    expect(wouldAct("check_run", "rerequested", checkRunPayload({ action: "rerequested", jobId: "j1", appId: 999 }), rules)).toBe(false);
  });

  it("is an /agent command in a review or an inline review comment, from a person", () => {
    expect(wouldAct("pull_request_review_comment", "created", reviewCommentPayload({ cloneUrl, body: "/agent run use a constant" }), rules)).toBe(true);
    expect(wouldAct("pull_request_review_comment", "created", reviewCommentPayload({ cloneUrl, body: "nit: a constant" }), rules)).toBe(false);
    expect(wouldAct("pull_request_review_comment", "created", reviewCommentPayload({ cloneUrl, body: "/agent run", senderType: "Bot" }), rules)).toBe(false);
    expect(wouldAct("pull_request_review", "submitted", reviewPayload({ cloneUrl, body: "/agent run address these" }), rules)).toBe(true);
    expect(wouldAct("pull_request_review", "submitted", reviewPayload({ cloneUrl, body: null }), rules)).toBe(false);
    expect(isHandledEvent("pull_request_review", "dismissed")).toBe(false);
  });

  it("is nothing when the payload is missing or malformed", () => {
    for (const payload of [undefined, null, "text", 42, {}, { sender: { type: "User" } }, { installation: { id: 1 }, label: { name: 7 } }]) {
      expect(wouldAct("issues", "labeled", payload, rules)).toBe(false);
    }
    const noInstallation = labeledPayload({ cloneUrl });
    delete noInstallation.installation;
    expect(wouldAct("issues", "labeled", noInstallation, rules)).toBe(false);
  });

  it("follows GitHub's cursor from the Link header, and stops without one", () => {
    expect(nextCursor('<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_12345>; rel="next"')).toBe("v1_12345");
    expect(
      nextCursor(
        '<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_1>; rel="prev", <https://api.github.com/app/hook/deliveries?cursor=v1_9>; rel="next"',
      ),
    ).toBe("v1_9");
    expect(nextCursor(undefined)).toBeUndefined();
    expect(nextCursor('<https://api.github.com/app/hook/deliveries?cursor=v1_1>; rel="prev"')).toBeUndefined();
  });
});
