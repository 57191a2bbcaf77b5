import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { loadControllerConfig } from "../../src/config/env.js";
import { startController } from "../../src/controller.js";
import { freePort, startHarness, type Harness } from "../support/harness.js";
import { OWNER, REPO } from "../support/payloads.js";

/**
 * `/metrics` lives on a server of its own (METRICS_HOST:METRICS_PORT, loopback by default),
 * optionally behind a bearer token, and names no repository unless the operator asks.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Whether a plain TCP connection to host:port is accepted (nock does not reach raw sockets). */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(5000);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

describe("the metrics server", () => {
  it("is not the webhook server: the webhook port answers 404 for /metrics, the metrics port serves them on loopback only", async () => {
    h = await startHarness();
    const webhook = await fetch(`${h.controller.url}/metrics`);
    expect(webhook.status).toBe(404);
    expect(await webhook.text()).not.toContain("agent_work_");

    const url = new URL(h.controller.metricsUrl!);
    expect(url.hostname).toBe("127.0.0.1");
    expect(url.port).not.toBe(new URL(h.controller.url).port);
    const res = await fetch(`${h.controller.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toContain('agent_work_jobs{state="queued"} 0');
    // Nothing else is served there: not the webhooks, not the job pages.
    for (const path of ["/", "/api/github/webhooks", "/jobs", "/healthz", "/metrics/../jobs"]) {
      expect((await fetch(`${h.controller.metricsUrl}${path}`)).status, path).toBe(404);
    }
    expect((await fetch(`${h.controller.metricsUrl}/metrics`, { method: "POST" })).status).toBe(404);

    // Bound to loopback: the same port on this machine's other addresses takes no connection.
    expect(await accepts("127.0.0.1", Number(url.port))).toBe(true);
    const external = Object.values(os.networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal && a.family === "IPv4")
      .map((a) => a!.address);
    for (const address of external) expect(await accepts(address, Number(url.port)), address).toBe(false);
  });

  it("asks for the bearer token when METRICS_TOKEN is set: 401 without it or with a wrong one, and the token is never logged", async () => {
    const token = randomBytes(24).toString("hex");
    h = await startHarness({ env: { METRICS_TOKEN: token } });
    const scrape = (authorization?: string) => fetch(`${h!.controller.metricsUrl}/metrics`, authorization ? { headers: { authorization } } : {});

    const none = await scrape();
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer /);
    expect(await none.text()).not.toContain("agent_work_");
    for (const wrong of [
      `Bearer ${token.slice(0, -1)}x`,
      `Bearer ${token}x`,
      `Bearer ${token.slice(1)}`,
      `Basic ${Buffer.from(`x:${token}`).toString("base64")}`,
      token,
      "Bearer",
      `Bearer ${token} extra`,
    ]) {
      const res = await scrape(wrong);
      expect(res.status, wrong).toBe(401);
      expect(await res.text()).not.toContain("agent_work_");
    }
    const ok = await scrape(`Bearer ${token}`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("agent_work_jobs");
    expect((await scrape(`bearer  ${token}`)).status).toBe(200);

    // Started, scraped, refused: the token appears in no log line (env-config.test.ts shows the config line masks it).
    expect(h.logLines.join("\n")).not.toContain(token);
  });

  it("labels costs by backend only: no repository name reaches the metrics by default", async () => {
    h = await startHarness();
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    expect((await h.controller.store.list())[0]!.state).toBe("succeeded");
    const plain = await (await fetch(`${h.controller.metricsUrl}/metrics`)).text();
    expect(plain).toContain('agent_work_cost_usd_total{backend="local"} 0');
    expect(plain).not.toContain(`${OWNER}/${REPO}`);
    expect(plain).not.toMatch(/repo="/);
  });

  it("labels costs with the repository when METRICS_REPO_LABELS=true asks for it", async () => {
    h = await startHarness({ env: { METRICS_REPO_LABELS: "true" } });
    await h.deliverLabel({ body: "FAKE_AGENT:edit" });
    await h.settle();
    const labelled = await (await fetch(`${h.controller.metricsUrl}/metrics`)).text();
    expect(labelled).toContain(`agent_work_cost_usd_total{repo="${OWNER}/${REPO}",backend="local"} 0`);
  });

  it("is off with METRICS_PORT=0, and a port already taken stops the start with advice", async () => {
    h = await startHarness({ env: { METRICS_PORT: "0" } });
    expect(h.controller.metricsUrl).toBeUndefined();
    expect((await fetch(`${h.controller.url}/metrics`)).status).toBe(404);

    // A port some other process holds: the controller does not start, and says what to change.
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const loaded = loadControllerConfig({
        APP_ID: "1234",
        PRIVATE_KEY: h.privateKey,
        WEBHOOK_SECRET: h.webhookSecret,
        HOST: "127.0.0.1",
        PORT: String(await freePort()),
        METRICS_PORT: String(port),
        DATA_DIR: mkdtempSync(path.join(tmpdir(), "agent-work-metrics-")),
      });
      if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
      await expect(startController({ config: loaded.config, logDestination: new PassThrough(), autoSchedule: false })).rejects.toThrow(
        new RegExp(`metrics server cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\).*METRICS_PORT`),
      );
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});
