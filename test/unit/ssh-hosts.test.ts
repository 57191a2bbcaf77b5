import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../src/backends/ssh/circuit-breaker.js";
import { loadSshHosts, readSshHostsFile } from "../../src/backends/ssh/load-ssh-hosts.js";

const dir = mkdtempSync(join(tmpdir(), "agent-work-ssh-hosts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { privateKey: KEY } = generateKeyPairSync("ed25519", {
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});
writeFileSync(join(dir, "build-1.key"), KEY, { mode: 0o600 });
const FINGERPRINT = "SHA256:uoQv3EiNR1mAkO4JEqC76Sl0TZI1OV91JZGwonfFEh8";

let n = 0;
function file(text: string, ext = "yml"): string {
  const p = join(dir, `hosts-${n++}.${ext}`);
  writeFileSync(p, text);
  return p;
}

describe("the SSH hosts file", () => {
  it("reads hosts from YAML, with defaults, the key read from a path relative to the file", () => {
    const hosts = loadSshHosts(
      file(`hosts:
  - name: build-1
    address: 10.0.0.5
    user: agent-work
    privateKeyPath: build-1.key
    hostKeySha256: ${FINGERPRINT}
    slots: 2
    labels: [large]
  - address: build-2.example.com
    port: 2222
    user: agent-work
    privateKeyPath: ${join(dir, "build-1.key")}
    slots: 1
    nodePath: /usr/local/bin/node
    workRoot: /srv/agent-work
`),
    );
    expect(hosts).toEqual([
      { name: "build-1", address: "10.0.0.5", port: 22, user: "agent-work", privateKey: KEY, slots: 2, labels: ["large"], hostKeySha256: FINGERPRINT },
      {
        name: "build-2.example.com",
        address: "build-2.example.com",
        port: 2222,
        user: "agent-work",
        privateKey: KEY,
        slots: 1,
        labels: [],
        nodePath: "/usr/local/bin/node",
        workRoot: "/srv/agent-work",
      },
    ]);
  });

  it("reads the same from JSON, and accepts a fingerprint pasted without its SHA256: prefix", () => {
    const hosts = loadSshHosts(
      file(
        JSON.stringify({ hosts: [{ name: "j", address: "10.0.0.6", user: "u", privateKey: KEY, slots: 3, hostKeySha256: FINGERPRINT.slice(7) + "=" }] }),
        "json",
      ),
    );
    expect(hosts[0]).toMatchObject({ name: "j", slots: 3, privateKey: KEY, hostKeySha256: FINGERPRINT });
  });

  it("names every bad key at once", () => {
    const result = readSshHostsFile(
      file(`hosts:
  - name: a
    address: 10.0.0.5
    user: agent-work
    privateKeyPath: build-1.key
    slot: 2
  - name: a
    address: 10.0.0.6
    port: 70000
    user: agent-work
    privateKey: not a key
    slots: 0
  - name: c
    address: 10.0.0.7
    user: agent-work
    slots: 1
    hostKeySha256: md5:aa
    workRoot: ../etc
`),
    );
    expect(result.ok).toBe(false);
    const errors = result.ok ? [] : result.errors;
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^hosts\[0\]\.slot: unknown key \(known keys: .*slots/),
        "hosts[0].slots: required",
        expect.stringMatching(/^hosts\[1\]\.port: /),
        expect.stringMatching(/^hosts\[1\]\.privateKey: expected the private key itself/),
        expect.stringMatching(/^hosts\[1\]\.slots: /),
        expect.stringMatching(/^hosts\[2\]\.hostKeySha256: expected a fingerprint/),
        expect.stringMatching(/^hosts\[2\]\.workRoot: /),
      ]),
    );
  });

  it("refuses duplicate names, a missing or doubled key, and an unreadable key file", () => {
    const result = readSshHostsFile(
      file(`hosts:
  - { name: a, address: h1, user: u, slots: 1, privateKeyPath: build-1.key }
  - { name: a, address: h2, user: u, slots: 1, privateKeyPath: build-1.key }
  - { name: b, address: h3, user: u, slots: 1 }
  - { name: c, address: h4, user: u, slots: 1, privateKeyPath: build-1.key, privateKey: "${KEY.replaceAll("\n", "\\n")}" }
  - { name: d, address: h5, user: u, slots: 1, privateKeyPath: missing.key }
`),
    );
    expect(result).toEqual({
      ok: false,
      errors: [
        'hosts[1].name: "a" is already the name of hosts[0]',
        "hosts[2]: set exactly one of privateKey and privateKeyPath",
        "hosts[3]: set exactly one of privateKey and privateKeyPath",
        `hosts[4].privateKeyPath: cannot read ${join(dir, "missing.key")} (ENOENT)`,
      ],
    });
  });

  it("says what is wrong with the file as a whole", () => {
    expect(readSshHostsFile(join(dir, "nope.yml"))).toEqual({ ok: false, errors: [`cannot read ${join(dir, "nope.yml")} (ENOENT)`] });
    expect(readSshHostsFile(file("hosts: [\n"))).toMatchObject({ ok: false, errors: [expect.stringMatching(/not valid YAML or JSON/)] });
    expect(readSshHostsFile(file("hosts: []\n"))).toEqual({ ok: false, errors: ["hosts: expected at least one host"] });
    expect(readSshHostsFile(file("machines: []\n"))).toMatchObject({
      ok: false,
      errors: expect.arrayContaining(["hosts: required", expect.stringMatching(/^machines: unknown key/)]),
    });
    expect(() => loadSshHosts(file("hosts: []\n"))).toThrow(/SSH_HOSTS_FILE .* is not valid:\n  - hosts: expected at least one host/);
  });
});

describe("a host's circuit breaker", () => {
  function breaker(threshold = 2, coolDownMs = 1000) {
    let clock = 0;
    const b = new CircuitBreaker({ failureThreshold: threshold, coolDownMs, now: () => clock });
    return { b, tick: (ms: number) => (clock += ms) };
  }
  const fail = (b: CircuitBreaker) => b.tryAcquire()!({ ok: false, error: "refused" });
  const succeed = (b: CircuitBreaker) => b.tryAcquire()!({ ok: true });

  it("stays closed while failures are fewer than the threshold, and a success resets the count", () => {
    const { b } = breaker(3);
    fail(b);
    fail(b);
    succeed(b);
    fail(b);
    fail(b);
    expect(b.state).toBe("closed");
    fail(b);
    expect(b.state).toBe("open");
    expect(b.tryAcquire()).toBeNull();
  });

  it("lets exactly one trial through after the cool-down; a failed trial re-opens it at once", () => {
    const { b, tick } = breaker(2, 1000);
    fail(b);
    fail(b);
    tick(999);
    expect(b.tryAcquire()).toBeNull();
    tick(1);
    expect(b.state).toBe("half-open");
    const trial = b.tryAcquire();
    expect(trial).not.toBeNull();
    expect(b.tryAcquire()).toBeNull();
    trial!({ ok: false, error: "still refused" });
    expect(b.state).toBe("open");
    expect(b.lastFailure).toBe("still refused");
    tick(1000);
    succeed(b);
    expect(b.state).toBe("closed");
    expect(b.consecutiveFailures).toBe(0);
  });

  it("records work that did not ask (teardown of what is on the host) whatever its state", () => {
    const { b } = breaker(2, 1000);
    fail(b);
    fail(b);
    expect(b.tryAcquire()).toBeNull();
    b.record({ ok: true });
    expect(b.state).toBe("closed");
    b.record({ ok: false, error: "refused" });
    b.record({ ok: false, error: "refused" });
    expect(b.state).toBe("open");
  });
});
