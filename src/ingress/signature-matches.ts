import { createHmac, timingSafeEqual } from "node:crypto";

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;

/**
 * GitHub's `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw body under the
 * webhook secret. Computed over the chunks as they were read (no joined copy of an unsigned body)
 * and compared in constant time.
 */
export function signatureMatches(secret: string, chunks: readonly Buffer[], header: string): boolean {
  const given = SIGNATURE.exec(header);
  if (!given) return false;
  const hmac = createHmac("sha256", secret);
  for (const chunk of chunks) hmac.update(chunk);
  return timingSafeEqual(hmac.digest(), Buffer.from(given[1]!, "hex"));
}
