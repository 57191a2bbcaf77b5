import { describe, expect, it } from "vitest";
import pino from "pino";
import { openStore } from "../../src/store/open-store.js";
import { JobLog } from "../../src/logs/job-log.js";
import { SignedCookies, sessionSecretFrom } from "../../src/web/signed-cookies.js";
import { html, unsafeHtml } from "../../src/web/html.js";
import { safeNext } from "../../src/web/routes/sign-in.js";
import { startLogRetention } from "../../src/web/log-retention.js";

/** The small pieces the job pages' safety rests on: signed cookies, escaping, redirects, log retention. */
const SECRET = "a-session-secret-of-at-least-32-characters!";
const NOW = 1_800_000_000_000;

describe("signed cookies", () => {
  const cookies = new SignedCookies(SECRET);

  it("give back what was signed, for its purpose, until it expires", () => {
    const value = cookies.sign("session", { login: "mona" }, NOW + 1000);
    expect(cookies.verify("session", value, NOW)).toEqual({ login: "mona" });
    expect(cookies.verify("oauth", value, NOW)).toBeUndefined();
    expect(cookies.verify("session", value, NOW + 1000)).toBeUndefined();
    expect(new SignedCookies(`${SECRET}-other`).verify("session", value, NOW)).toBeUndefined();
  });

  it("refuse any change to the payload or the signature", () => {
    const value = cookies.sign("session", { login: "mona", admin: false }, NOW + 1000);
    const [body, mac] = value.split(".") as [string, string];
    const forged = Buffer.from(Buffer.from(body, "base64url").toString().replace('"admin":false', '"admin":true ')).toString("base64url");
    expect(cookies.verify("session", `${forged}.${mac}`, NOW)).toBeUndefined();
    expect(cookies.verify("session", `${body}.${mac.slice(0, -2)}AA`, NOW)).toBeUndefined();
    expect(cookies.verify("session", body, NOW)).toBeUndefined();
    expect(cookies.verify("session", "", NOW)).toBeUndefined();
  });

  it("seal a token so the cookie does not show it, and refuse a tampered seal", () => {
    const token = "ghu_0123456789abcdefghijklmnopqrstuvwxyz";
    const sealed = cookies.encrypt(token);
    expect(sealed).not.toContain("ghu_");
    expect(cookies.decrypt(sealed)).toBe(token);
    const raw = Buffer.from(sealed, "base64url");
    raw[raw.length - 1]! ^= 1;
    expect(cookies.decrypt(raw.toString("base64url"))).toBeUndefined();
  });

  it("derive one CSRF token per sign-in", () => {
    expect(cookies.checkToken("nonce-1", cookies.tokenFor("nonce-1"))).toBe(true);
    expect(cookies.checkToken("nonce-2", cookies.tokenFor("nonce-1"))).toBe(false);
    expect(cookies.checkToken("nonce-1", undefined)).toBe(false);
  });

  it("use SESSION_SECRET when set, else a key derived from the App's private key that survives restarts", () => {
    expect(sessionSecretFrom({ sessionSecret: SECRET, privateKey: "pem" })).toBe(SECRET);
    const derived = sessionSecretFrom({ privateKey: "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----" });
    expect(derived).toBe(sessionSecretFrom({ privateKey: "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----" }));
    expect(derived).not.toContain("abc");
    expect(derived.length).toBeGreaterThanOrEqual(32);
  });
});

describe("html", () => {
  it("escapes everything interpolated except markup it made itself", () => {
    const title = `<img src=x onerror="alert(1)"> & 'quotes'`;
    expect(html`<h1 title="${title}">${title}</h1>`.value).toBe(
      '<h1 title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;quotes&#39;">&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;quotes&#39;</h1>',
    );
    expect(html`<ul>${["<a>", html`<li>${"<b>"}</li>`]}</ul>`.value).toBe("<ul>&lt;a&gt;<li>&lt;b&gt;</li></ul>");
    expect(html`${unsafeHtml("<br>")}${null}${undefined}${false}${0}`.value).toBe("<br>0");
  });
});

describe("after sign-in", () => {
  it("goes only to a path on this server", () => {
    expect(safeNext("/jobs/jabc?cancel=sent")).toBe("/jobs/jabc?cancel=sent");
    // Percent-encoded, so it fits the Location header it goes into.
    expect(safeNext("/\u0100")).toBe("/%C4%80");
    expect(safeNext("/jobs?q=\u00e9#top")).toBe("/jobs?q=%C3%A9");
    for (const evil of ["//evil.example", "/\\evil.example", "/\t/evil.example", "https://evil.example/jobs", "jobs", "/jobs\nx", null, ""]) {
      expect(safeNext(evil), String(evil)).toBe("/jobs");
    }
  });
});

describe("log retention", () => {
  it("deletes job log lines older than the retention time and keeps the rest", async () => {
    let now = NOW;
    const logs = new JobLog(await openStore({ dataDir: ":memory:" }), () => now);
    logs.append("jold", "stdout", "from long ago");
    await logs.flush();
    now += 13 * 86_400_000;
    logs.append("jnew", "stdout", "from yesterday");
    await logs.flush();
    now += 86_400_000 + 1;
    const retention = startLogRetention({ logs, days: 14, now: () => now, log: pino({ level: "silent" }) });
    try {
      expect(await retention.pruneOnce()).toBe(1);
      expect(await logs.read("jold")).toEqual([]);
      expect((await logs.read("jnew")).map((l) => l.line)).toEqual(["from yesterday"]);
      expect(await retention.pruneOnce()).toBe(0);
    } finally {
      retention.stop();
    }
  });
});
