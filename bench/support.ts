/** What several benchmarks need: a key pair, a free port, a quiet log sink, a temp data folder. */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { freePort } from "../test/support/harness.js";

export { freePort };

export function appCredentials() {
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return { appId: 1234, privateKey, secret: randomBytes(32).toString("hex") };
}

/** Log lines are formatted as usual (the cost is real) and then dropped. */
export function nullSink(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}

export function tempDataDir(): string {
  return mkdtempSync(path.join(tmpdir(), "agent-work-bench-"));
}
