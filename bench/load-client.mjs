// The HTTP load client the benchmarks share: autocannon, in its own process (plain Node, no tsx),
// so the target's CPU is measured alone and the client is not what limits the figures. Every
// request is a signed `issues.labeled` delivery for a new issue with a fresh delivery id.
//   node bench/load-client.mjs '<json: { url, secret, firstIssue, connections, rate?, seconds?, amount? }>'
// `rate` paces the whole run (requests a second across all connections); `amount` stops after that
// many requests, `seconds` after that long. Prints one JSON line: per-request latencies (ms, 2xx
// only), the count of every other answer, and how long it took.
//
// autocannon is loaded with require() so that NODE_PATH can point at a copy installed elsewhere.
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let autocannon;
try {
  autocannon = require("autocannon");
} catch {
  console.error("bench/load-client.mjs needs autocannon: `npm install` (it is a devDependency), or NODE_PATH=<prefix>/node_modules");
  process.exit(3);
}

const opts = JSON.parse(process.argv[2]);
const payload = JSON.parse(readFileSync(new URL("../test/fixtures/issues.labeled.json", import.meta.url), "utf8"));
payload.label.name = "agent-work";
payload.installation = { id: 4242, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
// The body is built by concatenation around the issue number, so a request costs one HMAC.
const MARK = 987654321;
payload.issue.number = MARK;
const [head, tail] = JSON.stringify(payload).split(String(MARK));
let issue = opts.firstIssue;

const latencies = [];
const statuses = {};
const started = performance.now();
const instance = autocannon(
  {
    url: opts.url,
    connections: opts.connections,
    pipelining: 1,
    // GitHub waits 10 s for an answer; a delivery slower than that counts as lost.
    timeout: 10,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.seconds }),
    requests: [
      {
        method: "POST",
        setupRequest(req) {
          const body = `${head}${issue++}${tail}`;
          return {
            ...req,
            body,
            headers: {
              "content-type": "application/json",
              "x-github-event": "issues",
              "x-github-delivery": randomUUID(),
              "x-hub-signature-256": `sha256=${createHmac("sha256", opts.secret).update(body).digest("hex")}`,
            },
          };
        },
      },
    ],
  },
  (err, result) => {
    if (err) {
      console.error(err);
      process.exit(1);
    }
    const answered = latencies.length;
    console.log(
      JSON.stringify({
        latencies,
        statuses,
        answered,
        errors: result.errors,
        timeouts: result.timeouts,
        // autocannon's own count of requests sent is an estimate when a rate is set.
        sent: Object.values(statuses).reduce((a, b) => a + b, 0) + result.errors,
        seconds: (performance.now() - started) / 1000,
      }),
    );
  },
);
// autocannon's own histogram rounds to whole milliseconds; bare Probot answers in about one.
instance.on("response", (_client, statusCode, _bytes, responseTime) => {
  statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
});
