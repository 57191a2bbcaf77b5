import { createPrivateKey, createSign, type KeyObject } from "node:crypto";

/** What @octokit/auth-app's `createJwt` option returns. */
export interface AppJwt {
  jwt: string;
  expiresAt: string;
}

/** A JWT lives 10 minutes at most (GitHub's limit); ours are issued 60 s in the past for clock skew, and live 9 minutes from now. */
const LIFETIME_S = 9 * 60;
const BACKDATE_S = 60;
/** A JWT this close to its expiry is not handed out again. */
const RENEW_BEFORE_S = 60;

const base64url = (value: string | Buffer) => Buffer.from(value).toString("base64url");

/**
 * The app's JWT (RS256, `iss` the app id), signed once and handed out until a minute before it
 * expires: @octokit/auth-app signs a fresh one for every call made as the app, and the controller
 * makes one a job (the worker's token), an RSA signature each (~1 ms of CPU, 5% of a job's under a
 * burst: bench/burst.ts --profile). `timeDifference` (seconds the server's clock is ahead, which
 * auth-app learns from a refused JWT) signs a new one. Plugged in as auth-app's `createJwt`
 * (octokit-class.ts); one cache a private key.
 */
export function cachedAppJwt(privateKey: string, now: () => number = Date.now): (appId: string | number, timeDifference?: number) => Promise<AppJwt> {
  let key: KeyObject | undefined;
  let cached: { appId: string; skew: number; expiresS: number; value: AppJwt } | undefined;
  return async (appId, timeDifference = 0) => {
    const nowS = Math.floor(now() / 1000) + timeDifference;
    if (cached && cached.appId === String(appId) && cached.skew === timeDifference && cached.expiresS - nowS > RENEW_BEFORE_S) return cached.value;
    key ??= createPrivateKey(privateKey);
    const expiresS = nowS + LIFETIME_S;
    const unsigned = `${base64url(JSON.stringify({ alg: "RS256", typ: "JWT" }))}.${base64url(JSON.stringify({ iat: nowS - BACKDATE_S, exp: expiresS, iss: String(appId) }))}`;
    const signature = createSign("RSA-SHA256").update(unsigned).sign(key);
    const value = { jwt: `${unsigned}.${base64url(signature)}`, expiresAt: new Date((expiresS - timeDifference) * 1000).toISOString() };
    cached = { appId: String(appId), skew: timeDifference, expiresS, value };
    return value;
  };
}

/** One cache a private key, shared by every client the controller makes from it. */
const caches = new Map<string, ReturnType<typeof cachedAppJwt>>();
export function sharedAppJwt(privateKey: string): ReturnType<typeof cachedAppJwt> {
  let cache = caches.get(privateKey);
  if (!cache) {
    cache = cachedAppJwt(privateKey);
    caches.set(privateKey, cache);
  }
  return cache;
}
