import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IncompleteListError } from "../../src/backends/incomplete-list-error.js";
import { loadSshHosts } from "../../src/backends/ssh/load-ssh-hosts.js";
import { ssh, type SshHostOptions } from "../../src/backends/ssh/ssh-backend.js";
import { SshHostKeyStore } from "../../src/store/ssh-host-keys.js";
import { STORE_KINDS, useTestStores } from "../support/postgres.js";
import { startSshd, type TestSshd } from "../support/sshd.js";

/**
 * The ssh backend against real sshds: a host's key is pinned in the hosts file or remembered in the
 * store on first use, and a host that answers with another key is refused, loudly, with no job run
 * there. Two sshds with different host keys sit behind one TCP port that the test switches, as a
 * rebuilt host (or someone in the middle) would look from the controller.
 */
const never = new AbortController().signal;
const job = (jobId: string) => ({ jobId, repoFullName: "octo/demo", maxSeconds: 600 });
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** One port on 127.0.0.1 that forwards to whichever sshd it is switched to; a switch drops open connections. */
async function switchablePort(initial: number) {
  let target = initial;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    const upstream = net.connect(target, "127.0.0.1");
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    socket.pipe(upstream).pipe(socket);
    socket.on("error", () => upstream.destroy());
    upstream.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    switchTo(port: number) {
      target = port;
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A backend log that keeps every line, by level. */
function captureLog() {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj, msg });
  return { lines, log: { info: at("info"), warn: at("warn"), error: at("error"), debug: at("debug") } };
}

describe.each(STORE_KINDS)("ssh host keys, remembered on %s", (kind) => {
  const stores = useTestStores(kind);
  let first: TestSshd;
  let second: TestSshd;
  let proxy: Awaited<ReturnType<typeof switchablePort>>;
  const workRoot = `agent-work-hostkeys-${randomBytes(4).toString("hex")}`;
  const dirs: string[] = [];

  beforeAll(async () => {
    [first, second] = await Promise.all([startSshd(), startSshd()]);
    expect(first.hostKeySha256).not.toBe(second.hostKeySha256);
    proxy = await switchablePort(first.port);
  }, 60_000);
  afterAll(async () => {
    await proxy?.close();
    await Promise.all([first?.close(), second?.close()]);
    await rm(path.join(first.home, workRoot), { recursive: true, force: true });
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const hostPort = () => `127.0.0.1:${proxy.port}`;
  const host = (over: Partial<SshHostOptions> = {}): SshHostOptions => ({
    name: "rebuildable",
    address: "127.0.0.1",
    port: proxy.port,
    user: first.username,
    privateKey: first.privateKey,
    slots: 4,
    labels: [],
    workRoot,
    ...over,
  });
  /** A backend as a controller process builds it: host keys remembered in this store. */
  const backendOn = (db: Kysely<any>, hosts: SshHostOptions[] = [host()]) => {
    const captured = captureLog();
    const backend = ssh.create({ hosts, killGraceMs: 1000, log: captured.log, hostKeys: new SshHostKeyStore(db) });
    return { backend, lines: captured.lines };
  };
  const jobDirs = async () => (await readdir(path.join(first.home, workRoot)).catch(() => [] as string[])).sort();
  const acceptedBy = (sshd: TestSshd) => sshd.logs().filter((l) => /Accepted publickey/.test(l)).length;

  it("remembers the first key in the store, so a backend made again (as a new process would) trusts it and refuses any other", async () => {
    proxy.switchTo(first.port);
    const firstUse = backendOn(await stores.fresh());
    const w1 = await firstUse.backend.create(job("tofu-1"), never);
    expect(w1.meta.host).toBe("rebuildable");
    expect(firstUse.lines.filter((l) => l.level === "warn" && /remembered .* on first use/.test(l.msg))).toEqual([
      expect.objectContaining({ obj: { host: hostPort(), hostKeySha256: first.hostKeySha256 } }),
    ]);
    await firstUse.backend.destroy(w1);
    await firstUse.backend.close();
    expect(await new SshHostKeyStore(await stores.another()).list()).toEqual([
      { host: hostPort(), fingerprint: first.hostKeySha256, since: expect.any(Number) },
    ]);

    // A new backend on a new connection to the store: nothing in memory, the store says which key.
    const restarted = backendOn(await stores.another());
    const w2 = await restarted.backend.create(job("tofu-2"), never);
    await restarted.backend.destroy(w2);
    await restarted.backend.close();
    expect(restarted.lines.filter((l) => l.level === "warn" || l.level === "error")).toEqual([]);

    // The host now answers with another key (rebuilt, or someone in the middle).
    proxy.switchTo(second.port);
    const acceptedBefore = acceptedBy(second);
    const refused = backendOn(await stores.another());
    try {
      const changed = new RegExp(
        `SSH host key of ${escape(hostPort())} changed: it presented ${escape(second.hostKeySha256)}, but ${escape(first.hostKeySha256)} was remembered on first use \\(\\d{4}-\\d\\d-\\d\\dT[^)]+\\); refusing the host, no job runs there`,
      );
      await expect(refused.backend.create(job("tofu-3"), never)).rejects.toThrow(changed);
      const listed = await refused.backend.list().catch((e: unknown) => e);
      expect(listed).toBeInstanceOf(IncompleteListError);
      expect((listed as IncompleteListError).unreachable.join("\n")).toMatch(changed);
      // Loudly: at error, with what to check and what to set.
      const errors = refused.lines.filter((l) => l.level === "error");
      expect(errors.length).toBeGreaterThan(0);
      expect(errors[0]!.obj).toEqual({ host: hostPort(), presented: second.hostKeySha256, expected: first.hostKeySha256, source: "remembered on first use" });
      expect(errors[0]!.msg).toMatch(changed);
      expect(errors[0]!.msg).toContain("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
      expect(errors[0]!.msg).toContain(`set hostKeySha256: ${second.hostKeySha256} for it in SSH_HOSTS_FILE`);
    } finally {
      await refused.backend.close();
    }
    // The handshake stopped at the key: the client never logged in there, and no job folder was made.
    expect(acceptedBy(second)).toBe(acceptedBefore);
    expect(await jobDirs()).toEqual([]);
    // What was remembered stays; a changed key does not overwrite it.
    expect((await new SshHostKeyStore(await stores.another()).recall(hostPort()))?.fingerprint).toBe(first.hostKeySha256);
  });

  it("refuses a host whose key is not the one pinned in the hosts file, and a pin replaces what was remembered", async () => {
    const db = await stores.fresh();
    proxy.switchTo(second.port);
    const dir = mkdtempSync(path.join(tmpdir(), "aw-hosts-"));
    dirs.push(dir);
    // Each test sshd authorises its own client key; the key pin is what this test is about.
    const hostsFile = (fingerprint: string) => {
      const file = path.join(dir, `hosts-${fingerprint.slice(7, 15).replace(/[^A-Za-z0-9]/g, "_")}.yaml`);
      writeFileSync(file, JSON.stringify({ hosts: [{ ...host(), privateKey: second.privateKey, hostKeySha256: fingerprint }] }));
      return loadSshHosts(file);
    };

    const acceptedBefore = acceptedBy(second);
    const pinnedToFirst = backendOn(db, hostsFile(first.hostKeySha256));
    try {
      const mismatch = new RegExp(
        `SSH host key of ${escape(hostPort())} changed: it presented ${escape(second.hostKeySha256)}, but the key pinned for it in SSH_HOSTS_FILE is ${escape(first.hostKeySha256)}; refusing the host, no job runs there`,
      );
      await expect(pinnedToFirst.backend.create(job("pin-1"), never)).rejects.toThrow(mismatch);
      expect(pinnedToFirst.lines.filter((l) => l.level === "error").map((l) => l.msg)).toEqual(expect.arrayContaining([expect.stringMatching(mismatch)]));
    } finally {
      await pinnedToFirst.backend.close();
    }
    expect(acceptedBy(second)).toBe(acceptedBefore);
    expect(await jobDirs()).toEqual([]);
    expect(await new SshHostKeyStore(db).list()).toEqual([]);

    // The operator checked the host and pinned its new key: it is used, and remembered in its place.
    const pinnedToSecond = backendOn(db, hostsFile(second.hostKeySha256));
    const w = await pinnedToSecond.backend.create(job("pin-2"), never);
    await pinnedToSecond.backend.destroy(w);
    await pinnedToSecond.backend.close();
    expect(acceptedBy(second)).toBeGreaterThan(acceptedBefore);
    expect((await new SshHostKeyStore(db).recall(hostPort()))?.fingerprint).toBe(second.hostKeySha256);
    // So taking the pin out later keeps trusting the key the operator vouched for, without a first-use warning.
    const unpinned = backendOn(await stores.another(), [host({ privateKey: second.privateKey })]);
    const w2 = await unpinned.backend.create(job("pin-3"), never);
    await unpinned.backend.destroy(w2);
    await unpinned.backend.close();
    expect(unpinned.lines.filter((l) => l.level === "warn" || l.level === "error")).toEqual([]);
  });
});
