/** A pool VM's SSH host key, recorded as a GCE label value and read back when the VM is taken. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hostKeyFromLabel, hostKeyLabelValue, labelValue } from "../../src/backends/gce/gce-names.js";
import { fingerprintOfKeyBlob } from "../../src/backends/gce/wait-for-ssh.js";

describe("the host key label", () => {
  it("holds any SHA256 fingerprint as a valid label value and gives the same fingerprint back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (blob) => {
        const fingerprint = fingerprintOfKeyBlob(Buffer.from(blob));
        const value = hostKeyLabelValue(fingerprint);
        // A label value GCE accepts is one labelValue() leaves as it is.
        expect(labelValue(value)).toBe(value);
        expect(hostKeyFromLabel(value)).toBe(fingerprint);
      }),
    );
  });

  it("reads nothing from a missing, truncated, capitalised or non-canonical value", () => {
    const value = hostKeyLabelValue(fingerprintOfKeyBlob(Buffer.from("a host key")));
    expect(hostKeyFromLabel(undefined)).toBeUndefined();
    expect(hostKeyFromLabel("")).toBeUndefined();
    expect(hostKeyFromLabel(value.slice(0, 51))).toBeUndefined();
    expect(hostKeyFromLabel(value.toUpperCase())).toBeUndefined();
    // The last character carries 4 spare bits, which hostKeyLabelValue always leaves zero.
    const last = "abcdefghijklmnopqrstuvwxyz234567".indexOf(value.at(-1)!);
    expect(hostKeyFromLabel(value.slice(0, 51) + "abcdefghijklmnopqrstuvwxyz234567"[last ^ 1])).toBeUndefined();
  });

  it("refuses to encode anything but a SHA256 fingerprint", () => {
    expect(() => hostKeyLabelValue("MD5:aa:bb")).toThrow(/not a SHA256 host key fingerprint/);
  });
});
