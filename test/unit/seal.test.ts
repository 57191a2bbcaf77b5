import { generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSealer, workerTokenSealer } from "../../src/secrets/seal.js";
import { canaryToken } from "../support/harness.js";

const pem = () =>
  generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } })
    .privateKey;
const key = pem();

describe("sealing a worker token for storage", () => {
  it("opens what it sealed, for the job it was sealed for, in both token formats", () => {
    const sealer = workerTokenSealer(key);
    for (const token of [canaryToken("classic"), canaryToken("jwt")]) {
      const sealed = sealer.seal(token, "jabc123");
      expect(sealed).not.toContain(token);
      expect(sealed).not.toContain(token.slice(4, 20));
      expect(sealer.open(sealed, "jabc123")).toBe(token);
    }
  });

  it("does not open for another job, another key, another purpose, or after any change", () => {
    const token = canaryToken("classic");
    const sealed = workerTokenSealer(key).seal(token, "jone");
    expect(workerTokenSealer(key).open(sealed, "jtwo")).toBeUndefined();
    expect(workerTokenSealer(pem()).open(sealed, "jone")).toBeUndefined();
    expect(createSealer(key, "something else").open(sealed, "jone")).toBeUndefined();
    expect(workerTokenSealer(key).open("v2" + sealed.slice(2), "jone")).toBeUndefined();
    fc.assert(
      fc.property(fc.nat(sealed.length - 5), fc.constantFrom("A", "b", "-", "_"), (i, c) => {
        const at = 3 + i; // never the last character: its spare bits do not decode
        fc.pre(sealed[at] !== c);
        const altered = sealed.slice(0, at) + c + sealed.slice(at + 1);
        expect(workerTokenSealer(key).open(altered, "jone")).not.toBe(token);
      }),
      { numRuns: 200 },
    );
  });

  it("seals the same token differently each time (a fresh nonce)", () => {
    const sealer = workerTokenSealer(key);
    const token = canaryToken("classic");
    expect(sealer.seal(token, "j1")).not.toBe(sealer.seal(token, "j1"));
  });
});
