/**
 * GitHub's REST API as a plain HTTP server on 127.0.0.1, for benchmarks that run the controller in
 * its own process (nock only works inside one). Answers what the pipeline calls, as github.com
 * would (trimmed to the fields read), counts calls by route, can add latency, and notes when each
 * issue's first answers became visible (the 👀, the queued check run, the status comment).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FirstAnswers {
  /** Epoch ms (fractional) at which GitHub answered the call, by issue number. */
  reaction: Map<number, number>;
  checkRun: Map<number, number>;
  comment: Map<number, number>;
}

export interface FakeGitHubServer {
  /** For GHE_HOST (host:port) with GHE_PROTOCOL=http: the API is served under /api/v3. */
  host: string;
  calls: Map<string, number>;
  first: FirstAnswers;
  total(): number;
  close(): Promise<void>;
}

const routes: [string, RegExp, number, (m: RegExpMatchArray, id: number) => unknown][] = [
  [
    "POST",
    /\/app\/installations\/\d+\/access_tokens$/,
    201,
    () => ({ token: `ghs_${"b".repeat(36)}`, expires_at: new Date(Date.now() + 3600_000).toISOString() }),
  ],
  ["GET", /\/collaborators\/([^/]+)\/permission$/, 200, (m) => ({ permission: "write", role_name: "write", user: { login: m[1] } })],
  // No `.github/agent-work.yml` in the repository nor in the owner's `.github`: the defaults apply.
  ["GET", /\/contents\/.+$/, 404, () => ({ message: "Not Found" })],
  ["GET", /\/issues\/\d+\/comments$/, 200, () => []],
  ["POST", /\/issues\/\d+\/reactions$/, 201, (_m, id) => ({ id, content: "eyes" })],
  ["POST", /\/issues\/comments\/\d+\/reactions$/, 201, (_m, id) => ({ id, content: "eyes" })],
  ["GET", /\/branches\/([^/]+)$/, 200, (m) => ({ name: m[1], commit: { sha: "a".repeat(40) } })],
  ["POST", /\/check-runs$/, 201, (_m, id) => ({ id })],
  ["PATCH", /\/check-runs\/(\d+)$/, 200, (m) => ({ id: Number(m[1]) })],
  ["POST", /\/issues\/\d+\/comments$/, 201, (_m, id) => ({ id, body: "" })],
  ["PATCH", /\/issues\/comments\/(\d+)$/, 200, (m) => ({ id: Number(m[1]) })],
  ["POST", /\/pulls$/, 201, (_m, id) => ({ number: id, html_url: `https://github.com/o/r/pull/${id}`, head: { sha: "c".repeat(40) } })],
  ["DELETE", /\/installation\/token$/, 204, () => null],
];

const epochMs = () => performance.timeOrigin + performance.now();

export async function startFakeGitHubServer(options: { latencyMs?: number } = {}): Promise<FakeGitHubServer> {
  const calls = new Map<string, number>();
  const first: FirstAnswers = { reaction: new Map(), checkRun: new Map(), comment: new Map() };
  // The queued check run names its job, not its issue; the status comment that follows names both.
  const checkRunAtByJob = new Map<string, number>();
  let nextId = 1;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0]!.replace(/^\/api\/v3/, "");
      const route = routes.find(([method, re]) => method === req.method && re.test(path));
      const key = route ? `${route[0]} ${route[1].source}` : `${req.method} (not found)`;
      calls.set(key, (calls.get(key) ?? 0) + 1);
      const answer = () => {
        if (!route) {
          res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "Not Found" }));
          return;
        }
        const body = route[3](path.match(route[1])!, nextId++);
        res.writeHead(route[2], { "content-type": "application/json; charset=utf-8" }).end(body === null ? "" : JSON.stringify(body));
        noteFirst(req.method!, path, Buffer.concat(chunks).toString("utf8"));
      };
      if (options.latencyMs) setTimeout(answer, options.latencyMs);
      else answer();
    });
  });
  function noteFirst(method: string, path: string, body: string): void {
    if (method !== "POST") return;
    const at = epochMs();
    const issue = Number(/\/issues\/(\d+)\//.exec(path)?.[1]);
    if (path.endsWith("/reactions") && issue && !first.reaction.has(issue)) first.reaction.set(issue, at);
    if (path.endsWith("/check-runs")) {
      const jobId = /"external_id":"([^"]+)"/.exec(body)?.[1];
      if (jobId && !checkRunAtByJob.has(jobId)) checkRunAtByJob.set(jobId, at);
    }
    if (path.endsWith("/comments") && issue && !first.comment.has(issue)) {
      const jobId = /agent-work:job=([^ ]+) -->/.exec(body)?.[1];
      const checkAt = jobId ? checkRunAtByJob.get(jobId) : undefined;
      if (checkAt !== undefined) first.checkRun.set(issue, checkAt);
      first.comment.set(issue, at);
    }
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    calls,
    first,
    total: () => [...calls.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
