import { z } from "zod";

/**
 * The schema of one key of the file: `read` gets its value, or `undefined` when the key is absent
 * (and returns the default then), and adds an issue when the value is wrong.
 *
 * The `.optional()` matters: zod 4's object treats a key whose schema does not accept absence as
 * required and reports it ("expected nonoptional") before `read` runs. It goes before the transform
 * so that `read` still runs for an absent key; after it, zod would skip `read` and drop the key.
 */
export function setting<T>(read: (value: unknown, ctx: z.RefinementCtx<unknown>) => T) {
  return z.unknown().optional().transform(read);
}
