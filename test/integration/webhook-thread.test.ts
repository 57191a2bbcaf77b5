/**
 * The webhook thread (src/ingress/ingress-thread.ts), as users run it (WEBHOOK_THREAD defaults to
 * true): deliveries are received and recorded on a thread of their own, and what the main thread
 * must know (the job, the wake-up, the counts, the log lines) reaches it; every other request is
 * passed on to the main thread's server and answered exactly as that server answers it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { request } from "node:http";
import { afterEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { MAIN_THREAD_NICE } from "../../src/ingress/start-ingress-thread.js";
import { startFakeGitHubOAuth } from "../support/fake-github-oauth.js";
import { startHarness } from "../support/harness.js";
import { deliver, labeledPayload } from "../support/payloads.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;
let h: Harness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** One request, raw: status, headers and body as the server sent them. */
function ask(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request(
      { host: target.hostname, port: target.port, method: options.method ?? "GET", path: options.path, headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const { date: _date, connection: _connection, "keep-alive": _keepAlive, ...headers } = res.headers;
          resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks).toString("utf8") });
        });
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** The nice of this process's main thread and of its webhook thread, from /proc (field 19 of a task's stat). */
function threadNices(): { main: number; webhooks: number | undefined } {
  const nice = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]);
  const webhooks = readdirSync("/proc/self/task").find((tid) => readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() === "aw-webhooks");
  return { main: nice(String(process.pid)), webhooks: webhooks === undefined ? undefined : nice(webhooks) };
}

function mainThreadUrl(harness: Harness): string {
  const address = harness.controller.httpServer.address();
  if (typeof address !== "object" || !address) throw new Error("the main thread's server is not listening");
  return `http://127.0.0.1:${address.port}`;
}

describe("the webhook thread", () => {
  it("records a delivery on its own connection and tells the main thread: the job, a wake-up, the count, the log line", async () => {
    // The scheduler's own timer would claim the job only after a minute: a claim sooner is the wake-up's.
    h = await startHarness({ env: { WEBHOOK_THREAD: "true", SCHEDULER_INTERVAL_MS: "600000" }, autoSchedule: true });
    const harness = h;
    expect(harness.controller.url).not.toBe(mainThreadUrl(harness));
    const wake = vi.spyOn(harness.controller.scheduler, "wake");

    // The main thread (this one) gives way to the webhook thread: nice is per thread on Linux.
    if (process.platform === "linux") expect(threadNices()).toEqual({ main: MAIN_THREAD_NICE, webhooks: 0 });

    const sent = await harness.deliverLabel({ number: 71 });
    expect(sent.status).toBe(200);
    // Written by the thread, read on the main thread's connection.
    const jobs = await harness.controller.store.list({ limit: 10 });
    expect(jobs.map((j) => j.number)).toEqual([71]);
    expect(jobs[0]!.deliveryId).toBe(sent.deliveryId);

    await vi.waitFor(() => expect(wake).toHaveBeenCalled(), { timeout: 10_000 });
    await vi.waitFor(() => expect(harness.logLines.some((l) => l.includes('"job recorded"') && l.includes(sent.deliveryId))).toBe(true), {
      timeout: 10_000,
    });
    await vi.waitFor(
      async () => {
        const metrics = await (await fetch(`${harness.controller.metricsUrl}/metrics`)).text();
        expect(metrics).toMatch(/agent_work_webhook_deliveries_total\{event="issues.labeled",outcome="recorded"\} 1\b/);
      },
      { timeout: 10_000 },
    );
    // Woken, the scheduler claims the job long before its next timed pass.
    await vi.waitFor(async () => expect((await harness.controller.store.get(jobs[0]!.id))?.state).not.toBe("received"), { timeout: 20_000 });

    // The same delivery again: seen before, no second job.
    expect((await harness.deliverLabel({ number: 71 }, sent.deliveryId)).status).toBe(200);
    expect(await harness.controller.store.list({ limit: 10 })).toHaveLength(1);
  });

  it("redacts its log lines on the main thread like every other line", async () => {
    h = await startHarness({ env: { WEBHOOK_THREAD: "true" } });
    const harness = h;
    // An unsigned delivery whose id is the webhook secret itself: refused, and the id is logged.
    const refused = await deliver(
      harness.controller.url,
      "not-the-secret",
      "issues",
      labeledPayload({ number: 5, cloneUrl: "http://127.0.0.1:1/x.git" }),
      harness.webhookSecret,
    );
    expect(refused.status).toBe(401);
    await vi.waitFor(() => expect(harness.logLines.some((l) => l.includes("webhook delivery refused"))).toBe(true), { timeout: 10_000 });
    const line = harness.logLines.find((l) => l.includes("webhook delivery refused"))!;
    expect(line).toContain("[REDACTED]");
    expect(harness.logLines.join("\n")).not.toContain(harness.webhookSecret);
    expect(await harness.controller.store.list({ limit: 10 })).toHaveLength(0);
  });

  it("passes every other request to the main thread and answers exactly what that server answered", async () => {
    // Sign-in configured: /auth/login answers with a redirect built from the request's Host and
    // X-Forwarded-Proto, and a cookie.
    const oauth = await startFakeGitHubOAuth({ clientId: "Iv23liFakeClientId0001", clientSecret: "fake-client-secret-0123456789abcdef", users: [] });
    onTestFinished(() => oauth.close());
    h = await startHarness({ env: { ...oauth.env(), WEBHOOK_THREAD: "true" } });
    const thread = h.controller.url;
    const main = mainThreadUrl(h);
    const requests: { method?: string; path: string; headers?: Record<string, string>; body?: string }[] = [
      { path: "/healthz" },
      { path: "/jobs?state=running" },
      { path: "/auth/login?next=%2Fjobs", headers: { host: "agent.example.org", "x-forwarded-proto": "https" } },
      { method: "POST", path: "/auth/logout", headers: { "content-type": "application/x-www-form-urlencoded", cookie: "x=1" }, body: "csrf=nope" },
      { path: "/no-such-page" },
      { path: "/assets/../../etc/passwd" },
    ];
    // A sign-in's state is new each time: compared by shape.
    const unrandom = (answer: Awaited<ReturnType<typeof ask>>) => ({
      ...answer,
      headers: {
        ...answer.headers,
        ...(answer.headers.location ? { location: String(answer.headers.location).replace(/state=[^&]*/, "state=…") } : {}),
        ...(answer.headers["set-cookie"] ? { "set-cookie": (answer.headers["set-cookie"] as string[]).map((c) => c.replace(/^([^=]+)=[^;]*/, "$1=…")) } : {}),
      },
    });
    for (const r of requests) {
      const [viaThread, direct] = [await ask(thread, r), await ask(main, r)];
      expect(unrandom(viaThread), `${r.method ?? "GET"} ${r.path}`).toEqual(unrandom(direct));
    }
    expect(JSON.parse((await ask(thread, { path: "/healthz" })).body)).toMatchObject({ ok: true });
    const login = await ask(thread, requests[2]!);
    expect(login.status).toBe(302);
    expect(String(login.headers.location)).toContain(encodeURIComponent("https://agent.example.org/auth/callback"));
    expect(login.headers["set-cookie"]).toBeDefined();
  });

  it("frees its port when the controller closes, and a port already taken stops the start with a clear error", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(startHarness({ env: { WEBHOOK_THREAD: "true", PORT: String(port) } })).rejects.toThrow(`port ${port} is already in use`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }

    h = await startHarness({ env: { WEBHOOK_THREAD: "true" } });
    const url = h.controller.url;
    expect((await ask(url, { path: "/healthz" })).status).toBe(200);
    await h.close();
    h = undefined;
    await expect(ask(url, { path: "/healthz" })).rejects.toThrow(/ECONNREFUSED/);
  });
});
