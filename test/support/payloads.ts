import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { sign } from "@octokit/webhooks-methods";

const labeled = JSON.parse(readFileSync(new URL("../fixtures/issues.labeled.json", import.meta.url), "utf8"));

export const INSTALLATION_ID = 4242;
export const OWNER = labeled.repository.owner.login as string; // Codertocat
export const REPO = labeled.repository.name as string; // Hello-World
export const REPO_ID = labeled.repository.id as number;
export const DEFAULT_BRANCH = labeled.repository.default_branch as string; // master

/** The recorded `issues.labeled` payload, adapted: our label, an installation, a local clone URL. */
export function labeledPayload(over: {
  label?: string;
  sender?: string;
  senderType?: "User" | "Bot";
  number?: number;
  title?: string;
  body?: string;
  cloneUrl: string;
}): Record<string, any> {
  const p = structuredClone(labeled);
  p.label.name = over.label ?? "agent-work";
  p.sender.login = over.sender ?? p.sender.login;
  p.sender.type = over.senderType ?? "User";
  if (over.number !== undefined) p.issue.number = over.number;
  if (over.title !== undefined) p.issue.title = over.title;
  if (over.body !== undefined) p.issue.body = over.body;
  p.repository.clone_url = over.cloneUrl;
  p.installation = { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  return p;
}

/** POSTs a delivery signed with the real secret, as GitHub would. */
export async function deliver(
  baseUrl: string,
  secret: string,
  event: string,
  payload: unknown,
  deliveryId: string = randomUUID(),
): Promise<{ status: number; deliveryId: string; ms: number }> {
  const body = JSON.stringify(payload);
  const started = performance.now();
  const res = await fetch(`${baseUrl}/api/github/webhooks`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": deliveryId,
      "x-hub-signature-256": await sign(secret, body),
    },
    body,
  });
  await res.text();
  return { status: res.status, deliveryId, ms: performance.now() - started };
}
