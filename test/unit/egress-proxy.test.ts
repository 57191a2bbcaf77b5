/**
 * The worker's egress proxy on its own: which names a pattern admits, and that the record of
 * refusals stays bounded whatever the agent sends (the integration tests run it in the sandbox).
 */
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error the worker is plain JavaScript with no declarations
import { hostAllowed, startEgressProxy } from "../../worker/lib/egress-proxy.mjs";

describe("hostAllowed", () => {
  it("admits a name exactly, a *. pattern only below its domain, and a pattern with a port only on that port", () => {
    const allow = ["api.example.com", "*.npmjs.org", "registry.example.com:8443"];
    expect(hostAllowed("api.example.com", 443, allow)).toBe(true);
    expect(hostAllowed("API.Example.com.", 80, allow)).toBe(true);
    expect(hostAllowed("evil-api.example.com", 443, allow)).toBe(false);
    expect(hostAllowed("api.example.com.evil.example", 443, allow)).toBe(false);
    expect(hostAllowed("registry.npmjs.org", 443, allow)).toBe(true);
    expect(hostAllowed("npmjs.org", 443, allow)).toBe(false);
    expect(hostAllowed("evilnpmjs.org", 443, allow)).toBe(false);
    expect(hostAllowed("registry.example.com", 8443, allow)).toBe(true);
    expect(hostAllowed("registry.example.com", 443, allow)).toBe(false);
  });
});

describe("the refusal record", () => {
  let dir: string;
  let proxy: { close(): Promise<void>; denied(): { host: string; port: number; count: number; firstAt: number }[] };
  const seen: string[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agent-work-egress-unit-"));
    proxy = await startEgressProxy({
      socketPath: path.join(dir, "proxy.sock"),
      allow: ["allowed.example"],
      onDenied: (d: { host: string; port: number }) => seen.push(`${d.host}:${d.port}`),
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** One CONNECT through the proxy's socket; resolves with its status line. */
  const connect = (target: string) =>
    new Promise<string>((resolve, reject) => {
      const s = net.connect(path.join(dir, "proxy.sock"), () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
      s.once("data", (d) => {
        s.destroy();
        resolve(d.toString().split("\r\n")[0]!);
      });
      s.on("error", reject);
    });

  it("refuses an allowed name that leads to this machine's loopback (a rebinding name), which only a listed address may reach", async () => {
    const dir2 = await mkdtemp(path.join(os.tmpdir(), "agent-work-egress-unit-"));
    const local = net.createServer((c) => c.end("the controller's port\n"));
    await new Promise<void>((r) => local.listen(0, "127.0.0.1", r));
    const port = (local.address() as net.AddressInfo).port;
    const p2 = await startEgressProxy({ socketPath: path.join(dir2, "proxy.sock"), allow: ["localhost", `127.0.0.1:${port}`] });
    try {
      const via = (target: string) =>
        new Promise<string>((resolve, reject) => {
          const s = net.connect(path.join(dir2, "proxy.sock"), () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
          s.once("data", (d) => {
            s.destroy();
            resolve(d.toString().split("\r\n")[0]!);
          });
          s.on("error", reject);
        });
      expect(await via(`localhost:${port}`)).toBe("HTTP/1.1 403 Forbidden");
      expect(p2.denied()).toMatchObject([{ host: "localhost", port, why: "it resolves to a loopback or link-local address" }]);
      expect(await via(`127.0.0.1:${port}`)).toBe("HTTP/1.1 200 Connection Established");
    } finally {
      await p2.close();
      local.close();
      await rm(dir2, { recursive: true, force: true });
    }
  });

  it("counts repeats of one host and port, keeps a host name's worth of a long name, and stops adding hosts at 200", async () => {
    for (let i = 0; i < 3; i++) expect(await connect("evil.example:443")).toBe("HTTP/1.1 403 Forbidden");
    const long = `${"a".repeat(8000)}.example`;
    expect(await connect(`${long}:443`)).toBe("HTTP/1.1 403 Forbidden");
    for (let i = 0; i < 250; i++) await connect(`h${i}.example:443`);
    const denied = proxy.denied();
    expect(denied).toHaveLength(200);
    expect(denied[0]).toMatchObject({ host: "evil.example", port: 443, count: 3 });
    expect(denied[1]!.host.length).toBeLessThanOrEqual(254);
    expect(denied[1]!.host.startsWith("aaaa")).toBe(true);
    // The log hears of each host once, not of every attempt.
    expect(seen.filter((s) => s === "evil.example:443")).toHaveLength(1);
    expect(seen).toHaveLength(200);
  });
});
