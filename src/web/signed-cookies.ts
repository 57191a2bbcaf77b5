import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Cookies the browser holds for us: signed with HMAC-SHA256 (so nobody can forge or alter a
 * sign-in), bound to a purpose (an OAuth `state` cookie cannot pass for a session) and to an expiry.
 * Values that must stay private even from whoever reads the cookie (the person's GitHub token) are
 * also encrypted with AES-256-GCM. Both keys derive from one secret with HKDF.
 */
export class SignedCookies {
  private readonly signKey: Buffer;
  private readonly encryptKey: Buffer;

  constructor(secret: string) {
    if (secret.length < 32) throw new Error("the session secret needs at least 32 characters");
    this.signKey = Buffer.from(hkdfSync("sha256", secret, "agent-work", "job pages: sign", 32));
    this.encryptKey = Buffer.from(hkdfSync("sha256", secret, "agent-work", "job pages: encrypt", 32));
  }

  sign(purpose: string, data: unknown, expiresAt: number): string {
    const body = Buffer.from(JSON.stringify({ p: purpose, e: expiresAt, d: data })).toString("base64url");
    return `${body}.${this.mac(body)}`;
  }

  /** The data, or undefined when the value is forged, altered, for another purpose or expired. */
  verify<T>(purpose: string, value: string | undefined, now: number): T | undefined {
    if (!value) return undefined;
    const dot = value.lastIndexOf(".");
    if (dot <= 0) return undefined;
    const body = value.slice(0, dot);
    if (!sameText(value.slice(dot + 1), this.mac(body))) return undefined;
    try {
      const parsed = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as { p: string; e: number; d: T };
      if (parsed.p !== purpose || typeof parsed.e !== "number" || parsed.e <= now) return undefined;
      return parsed.d;
    } catch {
      return undefined;
    }
  }

  encrypt(text: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.encryptKey, iv);
    const sealed = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString("base64url");
  }

  decrypt(sealed: string): string | undefined {
    try {
      const raw = Buffer.from(sealed, "base64url");
      const decipher = createDecipheriv("aes-256-gcm", this.encryptKey, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
    } catch {
      return undefined;
    }
  }

  /** A token only this server can compute for `subject` (the CSRF token of one sign-in). */
  tokenFor(subject: string): string {
    return this.mac(`csrf:${subject}`);
  }

  checkToken(subject: string, token: unknown): boolean {
    return typeof token === "string" && sameText(token, this.tokenFor(subject));
  }

  private mac(text: string): string {
    return createHmac("sha256", this.signKey).update(text).digest("base64url");
  }
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The session secret: the configured one, or one derived from the App's private key (stable across restarts and replicas). */
export function sessionSecretFrom(config: { sessionSecret?: string; privateKey?: string }): string {
  if (config.sessionSecret) return config.sessionSecret;
  if (!config.privateKey) throw new Error("the job pages need SESSION_SECRET or the App's private key to sign sessions");
  return Buffer.from(hkdfSync("sha256", config.privateKey, "agent-work", "session secret", 32)).toString("base64url");
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function cookieHeader(name: string, value: string, options: { path: string; maxAgeSeconds: number; secure: boolean }): string {
  return [
    `${name}=${value}`,
    `Path=${options.path}`,
    `Max-Age=${Math.max(0, Math.floor(options.maxAgeSeconds))}`,
    "HttpOnly",
    "SameSite=Lax",
    ...(options.secure ? ["Secure"] : []),
  ].join("; ");
}
