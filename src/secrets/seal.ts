import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/**
 * Seals a secret for storage at rest: AES-256-GCM under a key derived with HKDF-SHA256 from the
 * App's private key, bound to what it belongs to (the job id, as additional authenticated data), so
 * a sealed value copied onto another row does not open. The database alone reveals nothing; the
 * controller, which holds the private key anyway, can open it again after a restart.
 */
export interface Sealer {
  seal(secret: string, boundTo: string): string;
  /** The secret, or undefined when the value is not one this key sealed for `boundTo`. */
  open(sealed: string, boundTo: string): string | undefined;
}

const VERSION = "v1";

export function createSealer(privateKey: string, purpose: string): Sealer {
  if (!privateKey) throw new Error("sealing needs the App's private key");
  const key = Buffer.from(hkdfSync("sha256", privateKey, "agent-work", `seal: ${purpose}`, 32));
  return {
    seal(secret, boundTo) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(Buffer.from(boundTo, "utf8"));
      const body = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
      return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url")}`;
    },
    open(sealed, boundTo) {
      const [version, data] = sealed.split(".", 2);
      if (version !== VERSION || !data) return undefined;
      try {
        const raw = Buffer.from(data, "base64url");
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
        decipher.setAAD(Buffer.from(boundTo, "utf8"));
        decipher.setAuthTag(raw.subarray(12, 28));
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
      } catch {
        return undefined;
      }
    },
  };
}

/** The sealer for worker tokens kept so that a restarted controller can revoke them. */
export function workerTokenSealer(privateKey: string): Sealer {
  return createSealer(privateKey, "worker token at rest");
}
