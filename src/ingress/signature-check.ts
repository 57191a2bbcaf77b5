import { createHmac, timingSafeEqual } from "node:crypto";

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;

/**
 * GitHub's `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw body under the
 * webhook secret. Fed chunk by chunk as the body arrives (so an unsigned body is never joined or
 * read back just to be refused), then compared in constant time.
 */
export function signatureCheck(secret: string): { update(chunk: Buffer): void; matches(header: string): boolean } {
  const hmac = createHmac("sha256", secret);
  return {
    update: (chunk) => void hmac.update(chunk),
    matches(header) {
      const digest = hmac.digest();
      const given = SIGNATURE.exec(header);
      return given !== null && timingSafeEqual(digest, Buffer.from(given[1]!, "hex"));
    },
  };
}
