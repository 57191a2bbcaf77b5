import { randomBytes } from "node:crypto";

/** Job ids name VMs and folders: lowercase, starts with a letter, 12 characters. */
const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const ID_BYTES = 11;
/**
 * Random bytes for job ids, drawn from the kernel 4 KB at a time: a randomBytes call per id cost
 * ~40 µs, a twentieth of a webhook delivery's CPU (bench/ingest.ts profile), and the cost is per
 * call, not per byte. Each byte is used once.
 */
const idEntropy = { bytes: Buffer.alloc(0), at: 0 };

export function newJobId(): string {
  if (idEntropy.at + ID_BYTES > idEntropy.bytes.length) {
    idEntropy.bytes = randomBytes(4096);
    idEntropy.at = 0;
  }
  let id = "j";
  for (let i = 0; i < ID_BYTES; i++) id += ID_ALPHABET[idEntropy.bytes[idEntropy.at + i]! % ID_ALPHABET.length];
  idEntropy.at += ID_BYTES;
  return id;
}
