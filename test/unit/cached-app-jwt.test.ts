/**
 * The app's JWT is signed once and reused until a minute before it expires (cached-app-jwt.ts),
 * by every client the controller's Octokit class makes: the calls made as the app and the
 * installation-token requests carry the same valid JWT, against a local GitHub stand-in.
 */
import { createVerify, generateKeyPairSync } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { Probot } from "probot";
import { afterEach, expect, it, vi } from "vitest";
import { cachedAppJwt } from "../../src/github/cached-app-jwt.js";
import { createOctokitClass } from "../../src/github/octokit-class.js";

const { privateKey, publicKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

/** The JWT's claims, once its RS256 signature checked out with the app's public key. */
function verified(jwt: string): { iat: number; exp: number; iss: string } {
  const [header, payload, signature] = jwt.split(".");
  expect(JSON.parse(Buffer.from(header!, "base64url").toString())).toEqual({ alg: "RS256", typ: "JWT" });
  expect(createVerify("RSA-SHA256").update(`${header}.${payload}`).verify(publicKey, Buffer.from(signature!, "base64url"))).toBe(true);
  return JSON.parse(Buffer.from(payload!, "base64url").toString()) as { iat: number; exp: number; iss: string };
}

const servers: http.Server[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

it("every call made as the app, and every installation-token request, carries one JWT signed once", async () => {
  const seen: { route: string; authorization: string }[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    seen.push({ route: `${req.method} ${req.url}`, authorization: req.headers.authorization ?? "" });
    if (req.url?.endsWith("/access_tokens"))
      res.writeHead(201, { "content-type": "application/json" }).end(
        JSON.stringify({
          token: `ghs_${seen.length}`,
          expires_at: new Date(Date.now() + 3_600_000).toISOString(),
          permissions: {},
          repository_selection: "all",
        }),
      );
    else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: 4242, slug: "agent-work" }));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const Octokit = createOctokitClass({ log: pino({ level: "silent" }), onApiCall: () => undefined, overrides: { retry: { enabled: false } } });
  const probot = new Probot({
    appId: 4242,
    privateKey,
    Octokit,
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log: pino({ level: "silent" }) as never,
  });

  // Five seconds between calls (only Date is faked): a JWT signed for each call would differ in its times.
  vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
  const later = () => vi.setSystemTime(Date.now() + 5000);
  const app = await probot.auth();
  await app.request("GET /app");
  later();
  await app.request("GET /app");
  later();
  // Worker tokens are minted as the app, one a job: a token request each.
  await app.request("POST /app/installations/{installation_id}/access_tokens", { installation_id: 1, repository_ids: [1] });
  later();
  await app.request("POST /app/installations/{installation_id}/access_tokens", { installation_id: 1, repository_ids: [2] });
  later();
  // An installation client's own token request signs with the same JWT.
  const installation = await probot.auth(7);
  await installation.request("GET /repos/{owner}/{repo}", { owner: "o", repo: "r" });

  const jwts = seen.filter((s) => s.authorization.startsWith("bearer ") && !s.authorization.startsWith("bearer ghs_")).map((s) => s.authorization.slice(7));
  expect(jwts).toHaveLength(5);
  expect(new Set(jwts).size).toBe(1);
  const claims = verified(jwts[0]!);
  expect(claims.iss).toBe("4242");
  const nowS = Math.floor(Date.now() / 1000);
  // GitHub refuses a JWT that expires more than ten minutes after it was made, or was made in the future.
  expect(claims.exp - claims.iat).toBeLessThanOrEqual(600);
  expect(claims.iat).toBeLessThanOrEqual(nowS);
  expect(claims.exp).toBeGreaterThan(nowS + 60);
  // The installation's own calls use its token, not the JWT.
  expect(seen.at(-1)).toMatchObject({ route: "GET /repos/o/r", authorization: expect.stringMatching(/^token ghs_/) as unknown });
});

it("signs a new JWT a minute before the last one expires, and for a new clock difference", async () => {
  let now = Date.UTC(2026, 11, 5, 10, 0, 0);
  const jwtFor = cachedAppJwt(privateKey, () => now);
  const first = await jwtFor(4242);
  expect(await jwtFor(4242)).toBe(first);
  const { exp } = verified(first.jwt);
  expect(new Date(first.expiresAt).getTime()).toBe(exp * 1000);
  // Still two minutes to go: the same one.
  now = (exp - 120) * 1000;
  expect(await jwtFor(4242)).toBe(first);
  // Within the last minute: a new one, valid for nine minutes from now.
  now = (exp - 30) * 1000;
  const second = await jwtFor(4242);
  expect(second.jwt).not.toBe(first.jwt);
  expect(verified(second.jwt).exp).toBe(exp - 30 + 540);
  // GitHub's clock found 5 minutes ahead (auth-app passes the difference): signed for GitHub's time.
  const skewed = await jwtFor(4242, 300);
  expect(skewed.jwt).not.toBe(second.jwt);
  expect(verified(skewed.jwt).iat).toBe(exp - 30 + 300 - 60);
  expect(await jwtFor(4242, 300)).toBe(skewed);
});
