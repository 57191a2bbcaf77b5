/**
 * Sends signed `issues.labeled` deliveries (each a new issue, a fresh delivery id) to a URL, in its
 * own process so the target's event loop is measured alone. Phase 1: a fixed rate; phase 2: flat
 * out with a fixed number of requests in flight. Prints one JSON line with the latencies.
 *   tsx bench/load-generator.ts <url> <secret> <rate/s> <seconds> <flat-out seconds> <concurrency>
 */
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { sign } from "@octokit/webhooks-methods";

const [url, secret, rateArg, secondsArg, flatArg, concArg] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const flatSeconds = Number(flatArg);
const concurrency = Number(concArg);
const template = JSON.parse(readFileSync(new URL("../test/fixtures/issues.labeled.json", import.meta.url), "utf8"));
template.label.name = "agent-work";
template.installation = { id: 4242, node_id: "x" };
let issue = 100_000;

async function one(): Promise<{ ms: number; status: number }> {
  const p = template;
  p.issue.number = issue++;
  const body = JSON.stringify(p);
  const signature = await sign(secret!, body);
  const start = performance.now();
  const res = await fetch(url!, {
    method: "POST",
    headers: { "content-type": "application/json", "x-github-event": "issues", "x-github-delivery": randomUUID(), "x-hub-signature-256": signature },
    body,
  });
  await res.arrayBuffer();
  return { ms: performance.now() - start, status: res.status };
}

const paced: number[] = [];
const flat: number[] = [];
let failures = 0;
const interval = 1000 / rate;
const pending: Promise<void>[] = [];
const t0 = performance.now();
for (let i = 0; i < rate * seconds; i++) {
  const due = t0 + i * interval;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  pending.push(
    one().then(
      (r) => {
        if (r.status === 200) paced.push(r.ms);
        else failures++;
      },
      () => void failures++,
    ),
  );
}
await Promise.all(pending);

const t1 = performance.now();
let sent = 0;
async function worker() {
  while (performance.now() - t1 < flatSeconds * 1000) {
    sent++;
    const r = await one().catch(() => ({ ms: 0, status: 0 }));
    if (r.status === 200) flat.push(r.ms);
    else failures++;
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const elapsed = (performance.now() - t1) / 1000;
console.log(JSON.stringify({ paced, flat, flatPerSecond: flat.length / elapsed, failures, delivered: paced.length + flat.length }));
