import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { canaryToken, FIXTURES, startHarness, type Harness } from "../support/harness.js";
import { startFakeGitHubOAuth, type FakeGitHubOAuth } from "../support/fake-github-oauth.js";

/**
 * The job pages over plain HTTP (no browser): who may see what, the live log stream, Cancel, and
 * that no token ever reaches a page. The browser test (web-browser.test.ts) walks the same path.
 */
let h: Harness | undefined;
let oauth: FakeGitHubOAuth | undefined;
afterEach(async () => {
  await h?.close();
  await oauth?.close();
  h = undefined;
  oauth = undefined;
});

const CLIENT = { clientId: "Iv23liFakeClientId0001", clientSecret: "fake-client-secret-0123456789abcdef" };
const USERS = [
  { login: "maintainer", id: 1, permission: "write" as const },
  { login: "reader", id: 2, permission: "read" as const },
  { login: "outsider", id: 3, permission: "none" as const },
];

async function start(options: Parameters<typeof startHarness>[0] = {}) {
  oauth = await startFakeGitHubOAuth({ ...CLIENT, users: USERS });
  h = await startHarness({ ...options, permissions: { maintainer: "write", reader: "read" }, env: { ...oauth.env(), ...options.env } });
  return { h, oauth };
}

/** A browser in miniature: a cookie jar and manual redirects, so each hop can be checked. */
function client(base: string) {
  const jar = new Map<string, string>();
  async function request(url: string, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url, base);
    const headers = new Headers(init.headers);
    if (target.origin === new URL(base).origin && jar.size > 0) headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(target, { ...init, headers, redirect: "manual" });
    if (target.origin === new URL(base).origin) {
      for (const cookie of res.headers.getSetCookie()) {
        const [pair] = cookie.split(";");
        const [name, value] = [pair!.slice(0, pair!.indexOf("=")), pair!.slice(pair!.indexOf("=") + 1)];
        if (/Max-Age=0/.test(cookie)) jar.delete(name);
        else jar.set(name, value);
      }
    }
    return res;
  }
  return {
    jar,
    request,
    /** Follows redirects like a browser would, and returns the last response. */
    async follow(url: string, init: RequestInit = {}): Promise<Response> {
      let res = await request(url, init);
      for (let i = 0; i < 10 && res.status >= 300 && res.status < 400; i++) res = await request(res.headers.get("location")!);
      return res;
    },
  };
}

async function signIn(base: string, fake: FakeGitHubOAuth, login: string, next = "/jobs") {
  const c = client(base);
  const first = await c.request(next);
  expect(first.status).toBe(302);
  const toLogin = first.headers.get("location")!;
  expect(toLogin).toBe(`/auth/login?next=${encodeURIComponent(next)}`);
  const toGitHub = await c.request(toLogin);
  const authorize = new URL(toGitHub.headers.get("location")!);
  expect(`${authorize.origin}${authorize.pathname}`).toBe(`${fake.url}/login/oauth/authorize`);
  expect(authorize.searchParams.get("client_id")).toBe(CLIENT.clientId);
  expect(authorize.searchParams.get("redirect_uri")).toBe(`${base}/auth/callback`);
  const page = await (await fetch(authorize)).text();
  const href = new RegExp(`id="as-${login}" href="([^"]+)"`).exec(page)![1]!.replace(/&amp;/g, "&");
  const back = await c.request(href);
  expect(back.status).toBe(302);
  expect(back.headers.get("location")).toBe(next);
  const cookie = back.headers.getSetCookie().find((s) => s.startsWith("aw_session="))!;
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Lax/);
  return c;
}

/**
 * Ticks the scheduler until the one job is running (a chatty agent never ends by itself). A
 * generous deadline, not a count of passes: on a loaded machine the clone alone can take seconds.
 */
async function startRunning(h: Harness) {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    await h.controller.scheduler.tick();
    const job = (await h.controller.store.list())[0]!;
    if (job && job.state === "running") return job;
    await new Promise((r) => setTimeout(r, 50));
  }
  const job = (await h.controller.store.list())[0];
  throw new Error(`the job did not start: ${job?.state} (${job?.message ?? ""})`);
}

/** Waits for a log line, and says where the job stood if it never came. */
async function waitForLog(h: Harness, jobId: string, pattern: RegExp) {
  try {
    await waitFor(async () => (await h.controller.logs.read(jobId)).some((l) => pattern.test(l.line)), `a log line ${pattern}`);
  } catch (err) {
    const job = await h.controller.store.get(jobId);
    const lines = (await h.controller.logs.read(jobId)).map((l) => l.line.slice(0, 120));
    throw new Error(`${(err as Error).message}; the job is ${job?.state} (${job?.message ?? ""}), its log: ${JSON.stringify(lines.slice(-10))}`);
  }
}

async function waitFor<T>(check: () => Promise<T | undefined | false>, what: string, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Reads an SSE response for a while, returning every event as it came. */
async function readEvents(res: Response, until: (events: { event: string; data: string; id?: string }[]) => boolean, ms = 15_000) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: { event: string; data: string; id?: string }[] = [];
  let buffer = "";
  let raw = "";
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !until(events)) {
    const { value, done } = await Promise.race([
      reader.read(),
      new Promise<{ value: undefined; done: true }>((r) => setTimeout(() => r({ value: undefined, done: true }), deadline - Date.now())),
    ]);
    if (done) break;
    const text = decoder.decode(value, { stream: true });
    raw += text;
    buffer += text;
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = Object.fromEntries(
        block
          .split("\n")
          .filter((l) => !l.startsWith(":"))
          .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trimStart()]),
      );
      if (fields.event) events.push({ event: fields.event, data: fields.data ?? "", ...(fields.id ? { id: fields.id } : {}) });
    }
  }
  await reader.cancel().catch(() => undefined);
  return { events, raw };
}

describe("the job pages", () => {
  it("show nothing to someone not signed in: pages send them to GitHub, the stream and Cancel answer 401", async () => {
    const { h } = await start();
    // Recorded is enough: the page must not care whether the job ran.
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    const job = (await h.controller.store.list())[0]!;
    const c = client(h.controller.url);
    for (const path of ["/jobs", `/jobs/${job.id}`, "/jobs/jnosuchjob000"]) {
      const res = await c.request(path);
      expect(res.status, path).toBe(302);
      expect(res.headers.get("location")).toBe(`/auth/login?next=${encodeURIComponent(path)}`);
      expect(await res.text()).toBe("");
    }
    expect((await c.request(`/jobs/${job.id}/events`)).status).toBe(401);
    expect((await c.request(`/jobs/${job.id}/cancel`, { method: "POST" })).status).toBe(401);
    // A forged or altered session cookie is no session.
    const forged = await fetch(`${h.controller.url}/jobs`, { headers: { cookie: "aw_session=eyJwIjoic2Vzc2lvbiJ9.AAAA" }, redirect: "manual" });
    expect(forged.status).toBe(302);
    // The stylesheet and script hold no data and are public.
    expect((await c.request("/assets/agent-work.css")).status).toBe(200);
  });

  it("says how to turn sign-in on when the OAuth client is not configured", async () => {
    h = await startHarness();
    const res = await fetch(`${h.controller.url}/jobs`, { redirect: "manual" });
    expect(res.status).toBe(503);
    expect(await res.text()).toContain("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET");
  });

  it("refuse a sign-in whose state was not started in this browser", async () => {
    const { h, oauth } = await start();
    const attacker = client(h.controller.url);
    const toGitHub = await attacker.request("/auth/login");
    const authorize = new URL(toGitHub.headers.get("location")!);
    const page = await (await fetch(authorize)).text();
    const href = /id="as-outsider" href="([^"]+)"/.exec(page)![1]!.replace(/&amp;/g, "&");
    // The victim's browser never went to /auth/login, so it holds no state cookie for this link.
    const victim = client(h.controller.url);
    const res = await victim.request(href);
    expect(res.status).toBe(400);
    expect(res.headers.getSetCookie().some((s) => s.startsWith("aw_session=") && !/Max-Age=0/.test(s))).toBe(false);
    expect(await res.text()).toContain("Sign-in expired");
    expect(oauth.calls.filter((c) => c.path === "/login/oauth/access_token")).toHaveLength(0);
  });

  it("show a job to people who can read its repository and 404 to everyone else, as for a job that does not exist", async () => {
    const { h, oauth } = await start();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    const job = (await h.controller.store.list())[0]!;
    expect(job.state).toBe("succeeded");

    const reader = await signIn(h.controller.url, oauth, "reader", `/jobs/${job.id}`);
    const page = await reader.request(`/jobs/${job.id}`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const body = await page.text();
    expect(body).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(body).toContain("fake agent: edited AGENT_WAS_HERE.md");
    expect(body).toContain('data-state="succeeded"');
    expect(body).toContain("https://github.com/Codertocat/Hello-World/issues/1");
    // Read access sees no Cancel (and the job is over anyway).
    expect(body).not.toContain("Cancel job");

    const outsider = await signIn(h.controller.url, oauth, "outsider");
    const hidden = await outsider.request(`/jobs/${job.id}`);
    const missing = await outsider.request("/jobs/jnosuchjob000");
    expect(hidden.status).toBe(404);
    expect(missing.status).toBe(404);
    const hiddenText = await hidden.text();
    expect(hiddenText).not.toContain(job.title);
    expect(hiddenText.replace(job.id, "")).toBe((await missing.text()).replace("jnosuchjob000", ""));
    expect((await outsider.request(`/jobs/${job.id}/events`)).status).toBe(404);
    const list = await (await outsider.request("/jobs")).text();
    expect(list).not.toContain(job.id);
    expect(list).toContain("No jobs yet in repositories you can read");

    const readerList = await (await reader.request("/jobs")).text();
    expect(readerList).toContain(`/jobs/${job.id}`);
    // This agent used no model: the month's table says so.
    expect(readerList).toMatch(/data-label="Model" class="num">\$0(\.00)?</);
    expect(readerList).toContain("Codertocat/Hello-World");
    // Each person's access was asked of GitHub with their own token, once per repository and minute.
    const asked = oauth.calls.filter((c) => c.path.startsWith("/api/v3/repositories/"));
    expect(asked.filter((c) => c.as === "reader")).toHaveLength(1);
    expect(asked.filter((c) => c.as === "outsider")).toHaveLength(1);
  });

  it("show what the model cost beside the compute, on the job page and in the month's table", async () => {
    const { h, oauth } = await start();
    // The agent's CLI reports its run as claude-code's stream-json does: tokens and dollars.
    await h.deliverLabel({ body: 'FAKE_AGENT:usage\n\nFAKE_AGENT_ARGS: {"costUsd": 0.0421, "inputTokens": 1200, "outputTokens": 300}' });
    await h.settle();
    const job = (await h.controller.store.list())[0]!;
    expect(job.state).toBe("succeeded");
    expect(job.costUsd).toBeCloseTo(0.0421, 6);

    const reader = await signIn(h.controller.url, oauth, "reader", `/jobs/${job.id}`);
    const text = (await (await reader.request(`/jobs/${job.id}`)).text()).replace(/<[^>]+>/g, "");
    expect(text).toMatch(/compute \$0(\.00)? · \d+ s of compute \+ model \$0\.04\d* \(1,200 tokens in, 300 out\) = \$0\.04\d*/);
    const list = await (await reader.request("/jobs")).text();
    expect(list).toMatch(/data-label="Model" class="num">\$0\.04\d*</);
    expect(list).toMatch(/data-label="Total" class="num">\$0\.04\d*</);
  });

  it("stream the log live after the lines already shown, and never a token the agent prints", async () => {
    const canary = canaryToken("jwt");
    const { h, oauth } = await start({ tokenFormat: "jwt" });
    await h.deliverLabel({ body: `FAKE_AGENT:chatty FAKE_AGENT_SAY:${canary} FAKE_AGENT_SAY:${h.workerToken}` });
    const job = await startRunning(h);
    await waitForLog(h, job.id, /chatty line 3/);

    const maintainer = await signIn(h.controller.url, oauth, "maintainer", `/jobs/${job.id}`);
    const page = await (await maintainer.request(`/jobs/${job.id}`)).text();
    const after = Number(/data-after="(\d+)"/.exec(page)![1]);
    expect(after).toBeGreaterThan(0);
    expect(page).toContain("I found [REDACTED] lying around");
    expect(page).toContain("Cancel job");

    const stream = await maintainer.request(`/jobs/${job.id}/events?after=${after}`);
    expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { events, raw } = await readEvents(stream, (e) => e.filter((x) => x.event === "line").length >= 10);
    const lines = events.filter((e) => e.event === "line").map((e) => ({ id: Number(e.id), ...JSON.parse(e.data) }));
    expect(lines.length).toBeGreaterThanOrEqual(10);
    // Only lines after the ones the page showed, in order, each once.
    expect(lines[0]!.id).toBe(after + 1);
    expect(lines.map((l) => l.id)).toEqual(lines.map((_, i) => after + 1 + i));
    expect(lines.some((l) => /chatty line \d+/.test(l.line))).toBe(true);

    // The agent printed both tokens; the log kept neither, and neither page nor stream shows them.
    const stored = await h.controller.logs.read(job.id);
    expect(stored.filter((l) => l.line.includes("I found [REDACTED] lying around"))).toHaveLength(2);
    for (const secret of [canary, h.workerToken, canary.slice(0, 40), canary.split(".")[1]!]) {
      expect(page).not.toContain(secret);
      expect(raw).not.toContain(secret);
      expect(JSON.stringify(stored)).not.toContain(secret);
    }

    // A reconnect resumes after the browser's Last-Event-ID.
    const last = lines.at(-1)!.id;
    const again = await maintainer.request(`/jobs/${job.id}/events?after=${after}`, { headers: { "last-event-id": String(last) } });
    const resumed = await readEvents(again, (e) => e.some((x) => x.event === "line"));
    expect(Number(resumed.events.find((e) => e.event === "line")!.id)).toBe(last + 1);
  });

  it("stop streaming the log to someone whose access was removed, at the next re-check, and keep streaming to those who still have it", async () => {
    const { h, oauth } = await start({ env: { LOG_STREAM_RECHECK_SECONDS: "1" } });
    await h.deliverLabel({ body: "FAKE_AGENT:chatty" });
    const job = await startRunning(h);
    await waitForLog(h, job.id, /chatty line 1/);
    const checksBy = (login: string) => oauth.calls.filter((c) => c.as === login && c.path.startsWith("/api/v3/repositories/")).length;

    const reader = await signIn(h.controller.url, oauth, "reader");
    const maintainer = await signIn(h.controller.url, oauth, "maintainer");
    const readerStream = await reader.request(`/jobs/${job.id}/events?after=0`);
    const maintainerStream = await maintainer.request(`/jobs/${job.id}/events?after=0`);
    expect(readerStream.status).toBe(200);
    expect(maintainerStream.status).toBe(200);
    let readerEnded = false;
    const readerEvents = readEvents(readerStream, (e) => e.some((x) => x.event === "end"), 60_000).finally(() => (readerEnded = true));

    // The stream asks GitHub again while it is open (not from the minute's cache) and, while access
    // holds, goes on: the reader's stream is still open after two re-checks.
    await waitFor(async () => checksBy("reader") >= 3, "two re-checks of the reader's access");
    expect(readerEnded).toBe(false);

    oauth.setPermission("reader", "none");
    const { events } = await readerEvents;
    expect(events.at(-1)).toEqual({ event: "end", data: JSON.stringify({ reason: "access" }) });
    expect(events.filter((e) => e.event === "line").length).toBeGreaterThan(0);
    const readerLast = Math.max(...events.filter((e) => e.event === "line").map((e) => Number(e.id)));
    expect(h.logLines.some((l) => l.includes("the viewer may no longer read the repository") && l.includes('"login":"reader"'))).toBe(true);
    // The job is still running: the stream ended for the person, not because the job did.
    expect((await h.controller.store.get(job.id))!.state).toBe("running");

    // The maintainer's stream, re-checked all along, still carries lines the reader never got.
    const checked = checksBy("maintainer");
    const more = await readEvents(
      maintainerStream,
      (e) => e.filter((x) => x.event === "line" && Number(x.id) > readerLast).length >= 5 && checksBy("maintainer") >= checked + 2,
      60_000,
    );
    expect(more.events.filter((e) => e.event === "line" && Number(e.id) > readerLast).length).toBeGreaterThanOrEqual(5);
    expect(more.events.some((e) => e.event === "end")).toBe(false);
    // And the reader, reconnecting, is turned away like anyone who cannot see the job.
    expect((await reader.request(`/jobs/${job.id}/events?after=${readerLast}`)).status).toBe(404);
  }, 120_000);

  it("turn Cancel into a stop request from the signed-in person, checked by GitHub, and the stream ends with the job", async () => {
    const { h, oauth } = await start();
    await h.deliverLabel({ body: "FAKE_AGENT:chatty" });
    const job = await startRunning(h);
    await waitForLog(h, job.id, /chatty line 1/);

    const reader = await signIn(h.controller.url, oauth, "reader");
    const readerCsrf = /name="csrf" value="([^"]+)"/.exec(await (await reader.request(`/jobs/${job.id}`)).text())![1]!;
    const refused = await reader.request(`/jobs/${job.id}/cancel`, { method: "POST", body: new URLSearchParams({ csrf: readerCsrf }) });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain("needs write access");

    const maintainer = await signIn(h.controller.url, oauth, "maintainer");
    const page = await (await maintainer.request(`/jobs/${job.id}`)).text();
    const csrf = /<form class="cancel"[^>]*><input type="hidden" name="csrf" value="([^"]+)"/.exec(page)![1]!;
    // Without the page's token (a form on another site), nothing is recorded.
    const forged = await maintainer.request(`/jobs/${job.id}/cancel`, { method: "POST", body: new URLSearchParams({ csrf: readerCsrf }) });
    expect(forged.status).toBe(403);
    expect(await h.controller.requests.list()).toEqual([]);

    const stream = await maintainer.request(`/jobs/${job.id}/events?after=0`);
    const ended = readEvents(stream, (e) => e.some((x) => x.event === "end"), 20_000);
    const res = await maintainer.request(`/jobs/${job.id}/cancel`, { method: "POST", body: new URLSearchParams({ csrf }) });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/jobs/${job.id}?cancel=sent`);
    const [request] = await h.controller.requests.list();
    expect(request).toMatchObject({ source: "web", verb: "stop", sender: "maintainer", args: { jobId: job.id } });

    await h.settle();
    expect((await h.controller.store.get(job.id))!.state).toBe("cancelled");
    // The pipeline asked GitHub whether the person who clicked may stop work here.
    expect(h.github.calls.some((c) => c.method === "GET" && c.path.endsWith("/collaborators/maintainer/permission"))).toBe(true);
    const { events } = await ended;
    const jobEvents = events.filter((e) => e.event === "job").map((e) => JSON.parse(e.data));
    expect(jobEvents.at(-1)!.state).toBe("cancelled");
    expect(jobEvents.at(-1)!.summary).toContain("stopped by @maintainer");
    expect(jobEvents.at(-1)!.summary).not.toContain("Cancel job");
    expect(events.at(-1)!.event).toBe("end");

    // A page rendered while the job ran whose stream opens only after it ended (a loaded machine, a
    // reconnect) still learns the end: the stream opens with the job as it is now.
    const late = await readEvents(await maintainer.request(`/jobs/${job.id}/events?after=0`), (e) => e.some((x) => x.event === "end"));
    const first = late.events.find((e) => e.event === "job");
    expect(JSON.parse(first!.data).state).toBe("cancelled");
    expect(late.events.findIndex((e) => e.event === "job")).toBeLessThan(late.events.findIndex((e) => e.event === "end"));
  });

  it("list the connections the allow-list blocked, each host escaped as the text an agent chose", async () => {
    const agent = `${FIXTURES}network-agent.mjs`;
    const { h, oauth } = await start({
      repoConfigYaml: `agent: command\ncommand: ["node", "${agent}", "{prompt_file}"]\nnetwork: allowlist\n`,
      env: { SANDBOX_RO_BINDS: FIXTURES.replace(/\/$/, "") },
    });
    // The agent asks the proxy for a "host" with characters HTML gives meaning to (raw < and > do
    // not get past Node's HTTP parser; the prompt decodes entities).
    const probes = { PROBE_DIRECT: "x'(a&b)':80", PROBE_ALLOWED: "127.0.0.1:9", PROBE_DENIED: "evil.example:80" };
    await h.deliverLabel({ body: `Probe the network.\nPROBES: ${JSON.stringify(probes)}` });
    await h.settle();
    const job = (await h.controller.store.list())[0]!;
    expect(job.state, job.message ?? "").toBe("succeeded");
    const reader = await signIn(h.controller.url, oauth, "reader", `/jobs/${job.id}`);
    const body = await (await reader.request(`/jobs/${job.id}`)).text();
    const section = /<div class="blocked" id="blocked">[\s\S]*?<\/div>/.exec(body)?.[0] ?? "";
    expect(section).toMatch(/Network: \d+ connections blocked by the allow-list/);
    for (const hostPort of ["evil.example:80", "169.254.169.254:80", "metadata.google.internal:80", "127.0.0.1:9", "x&#39;(a&amp;b)&#39;:80"])
      expect(section).toContain(`<code>${hostPort}</code>`);
    expect(section).toMatch(/first at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
    expect(body).not.toContain("x'(a&b)'");
  });

  it("sign out revokes the person's GitHub token and ends the session", async () => {
    const { h, oauth } = await start();
    const c = await signIn(h.controller.url, oauth, "reader");
    const page = await (await c.request("/jobs")).text();
    expect(page).toContain("Signed in as <b>reader</b>");
    expect(oauth.liveTokens()).toHaveLength(1);
    const csrf = /action="\/auth\/logout"><input type="hidden" name="csrf" value="([^"]+)"/.exec(page)![1]!;
    const out = await c.request("/auth/logout", { method: "POST", body: new URLSearchParams({ csrf }) });
    expect(out.status).toBe(200);
    expect(oauth.liveTokens()).toEqual([]);
    expect((await c.request("/jobs")).status).toBe(302);
  });

  it("send someone whose GitHub token expired back through sign-in", async () => {
    const { h, oauth } = await start();
    const c = await signIn(h.controller.url, oauth, "reader");
    oauth.expireAll();
    await h.deliverLabel({ body: "FAKE_AGENT:none" });
    const res = await c.request("/jobs");
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/auth/login?next=%2Fjobs");
    expect(res.headers.getSetCookie().some((s) => s.startsWith("aw_session=;") && /Max-Age=0/.test(s))).toBe(true);
  });
});

describe("the sign-in callback", () => {
  /** Starts a sign-in at /auth/login with `next`, and returns the link GitHub sends `login` back with. */
  async function startSignIn(c: ReturnType<typeof client>, fake: FakeGitHubOAuth, login: string, next?: string): Promise<URL> {
    const toGitHub = await c.request(next === undefined ? "/auth/login" : `/auth/login?next=${encodeURIComponent(next)}`);
    expect(toGitHub.status).toBe(302);
    const page = await (await fetch(toGitHub.headers.get("location")!)).text();
    expect(page).toContain("Fake GitHub");
    return new URL(new RegExp(`id="as-${login}" href="([^"]+)"`).exec(page)![1]!.replace(/&amp;/g, "&"));
  }

  it("lands on a path of this server whatever `next` was, even text a Location header cannot carry", async () => {
    const { h, oauth } = await start();
    const odd = [
      "/\u0100",
      "/jobs/\u00fc?x=\u00e9&y=\u{1F600}",
      "/\u2028",
      "/%ZZ",
      "/jobs#frag",
      "/jobs/../auth/logout",
      "/\x7f",
      "/a\u00a0b",
      "/" + "\u0100".repeat(400),
      "/\\evil.example",
      "//evil.example",
      "https://evil.example/",
    ];
    const next = fc.oneof(
      fc.constantFrom(...odd),
      fc.string({ unit: "grapheme", maxLength: 30 }).map((s) => `/${s}`),
      fc.string({ unit: "binary-ascii", maxLength: 30 }).map((s) => `/${s}`),
    );
    await fc.assert(
      fc.asyncProperty(next, async (value) => {
        const c = client(h.controller.url);
        const back = await c.request((await startSignIn(c, oauth, "reader", value)).toString());
        expect(back.status, JSON.stringify(value)).toBe(302);
        const location = back.headers.get("location")!;
        // A path here, in plain ASCII: never another site, never a header Node refuses to send.
        expect(location, JSON.stringify(value)).toMatch(/^\/(?![/\\])[\x21-\x7e]*$/);
        expect(new URL(location, h.controller.url).origin).toBe(new URL(h.controller.url).origin);
      }),
      { numRuns: 25 },
    );
    // The one from the report: signed in, sent to the (percent-encoded) path.
    const c = client(h.controller.url);
    const back = await c.request((await startSignIn(c, oauth, "reader", "/\u0100")).toString());
    expect(back.headers.get("location")).toBe("/%C4%80");
  });

  it("answers a malformed or tampered callback with 400 and says why, without asking GitHub", async () => {
    const { h, oauth } = await start();
    const c = client(h.controller.url);
    const link = await startSignIn(c, oauth, "reader");
    const state = link.searchParams.get("state")!;
    const code = link.searchParams.get("code")!;
    const exchanges = () => oauth.calls.filter((x) => x.path === "/login/oauth/access_token").length;

    const codes = fc.oneof(
      fc.constantFrom("", " ", "\u0100", "\0", "a b", "x".repeat(10_000), `${code}\n`, "%", "<script>"),
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }).filter((s) => !/^[A-Za-z0-9._~-]+$/.test(s)),
    );
    await fc.assert(
      fc.asyncProperty(codes, fc.option(fc.string({ unit: "grapheme", maxLength: 20 })), async (badCode, next) => {
        const q = new URLSearchParams({ code: badCode, state });
        if (next !== null) q.set("next", next);
        const res = await c.request(`/auth/callback?${q}`);
        expect(res.status, JSON.stringify(badCode)).toBe(400);
        expect(await res.text()).toContain("The sign-in link GitHub sent back is malformed");
      }),
      { numRuns: 25 },
    );
    for (const query of [
      `code=${code}`,
      `code=${code}&state=`,
      `code=${code}&state=${encodeURIComponent("\u0100")}`,
      `code=${code}&state=${state}x`,
      `state=${state}`,
      `code=${code}&state=${"s".repeat(5000)}`,
    ]) {
      const res = await c.request(`/auth/callback?${query}&next=${encodeURIComponent("/\u0100")}`);
      expect(res.status, query).toBe(400);
      expect(await res.text(), query).toMatch(/Sign-in expired|malformed/);
    }
    expect(exchanges()).toBe(0);
    expect(c.jar.has("aw_session")).toBe(false);

    // A well-formed code GitHub does not know is refused by GitHub: still the person's bad link, so 400.
    const fresh = client(h.controller.url);
    const other = await startSignIn(fresh, oauth, "reader");
    other.searchParams.set("code", "0123456789abcdef0123");
    const refused = await fresh.request(other.toString());
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("GitHub said bad_verification_code");
    expect(fresh.jar.has("aw_session")).toBe(false);
  });
});
