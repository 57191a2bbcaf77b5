/**
 * waitForSsh with probes that fail at once, answer, or hear nothing until they time out (a SYN sent
 * before a resumed VM's network was back is dropped, not refused). The probes are fakes; the clock
 * is the real one with short delays.
 */
import net from "node:net";
import { describe, expect, it } from "vitest";
import { realClock } from "../../src/backends/gce/backoff.js";
import { probeSshHostKey, waitForSsh, type SshProbe } from "../../src/backends/gce/wait-for-ssh.js";

const BACKOFF = { initialMs: 20, maxMs: 20, multiplier: 1 };

/** The first probe hears nothing until it gives up (`hangMs`); every later one is answered. */
function firstProbeHangs(hangMs: number) {
  const calls: { settled: boolean }[] = [];
  const probe: SshProbe = async () => {
    const call = { settled: false };
    calls.push(call);
    if (calls.length === 1) {
      await new Promise((r) => setTimeout(r, hangMs));
      call.settled = true;
      throw new Error("connect ETIMEDOUT");
    }
    call.settled = true;
    return "SHA256:key";
  };
  return { probe, calls };
}

const wait = (probe: SshProbe, concurrent?: number) =>
  waitForSsh({
    host: "10.0.0.2",
    port: 22,
    probe,
    clock: realClock,
    deadline: Date.now() + 30_000,
    backoff: BACKOFF,
    probeTimeoutMs: 2000,
    ...(concurrent ? { concurrent } : {}),
  });

describe("waiting for SSH", () => {
  it("with overlapping probes, a probe that hears nothing does not hold the next: the key comes while it still waits", async () => {
    const { probe, calls } = firstProbeHangs(1500);
    expect(await wait(probe, 4)).toBe("SHA256:key");
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls[0]!.settled, "the first probe was still waiting when the key was shown").toBe(false);
  });

  it("one probe at a time by default: each ends before the next goes", async () => {
    const { probe, calls } = firstProbeHangs(200);
    expect(await wait(probe)).toBe("SHA256:key");
    expect(calls).toHaveLength(2);
    expect(calls[0]!.settled).toBe(true);
  });

  it("never has more probes waiting than allowed", async () => {
    let waiting = 0;
    let most = 0;
    let calls = 0;
    const probe: SshProbe = async () => {
      most = Math.max(most, ++waiting);
      try {
        if (++calls < 8) {
          await new Promise((r) => setTimeout(r, 100));
          throw new Error("connect ETIMEDOUT");
        }
        return "SHA256:key";
      } finally {
        waiting--;
      }
    };
    expect(await wait(probe, 3)).toBe("SHA256:key");
    expect(most).toBe(3);
  });

  it("sends no other probe while one is connected: a handshake under way is waited for, not joined", async () => {
    let calls = 0;
    const probe: SshProbe = async (_host, _port, _timeoutMs, onConnected) => {
      calls++;
      onConnected?.();
      await new Promise((r) => setTimeout(r, 300));
      return "SHA256:key";
    };
    expect(await wait(probe, 4)).toBe("SHA256:key");
    expect(calls).toBe(1);
  });

  it("the real probe says when its TCP connection is made, and not when nothing listens", async () => {
    const server = net.createServer((socket) => socket.end("SSH-2.0-not-really\r\n"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as net.AddressInfo;
    try {
      let connected = 0;
      await expect(probeSshHostKey("127.0.0.1", port, 2000, () => connected++)).rejects.toThrow();
      expect(connected).toBe(1);
    } finally {
      server.close();
    }
    let connected = 0;
    await expect(probeSshHostKey("127.0.0.1", port, 2000, () => connected++)).rejects.toThrow();
    expect(connected).toBe(0);
  });

  it("gives up at the deadline with the last probe's error, and stops when the signal aborts", async () => {
    const refused: SshProbe = () => Promise.reject(new Error("connect ECONNREFUSED"));
    await expect(
      waitForSsh({ host: "h", port: 22, probe: refused, clock: realClock, deadline: Date.now() + 150, backoff: BACKOFF, concurrent: 4 }),
    ).rejects.toThrow(/did not answer before the boot deadline \(last error: connect ECONNREFUSED\)/);
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error("stopped")), 100);
    await expect(
      waitForSsh({
        host: "h",
        port: 22,
        probe: refused,
        clock: realClock,
        deadline: Date.now() + 30_000,
        backoff: BACKOFF,
        concurrent: 4,
        signal: stop.signal,
      }),
    ).rejects.toThrow(/stopped/);
  });
});
