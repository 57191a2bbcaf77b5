import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * A function that runs V8's minor (young-generation) collection, or does nothing where it cannot
 * be had. Why the ingress wants one: every chunk Node's HTTP parser hands over is a fresh copy, and
 * V8 frees those copies only when a collection runs, which their bytes (outside the JS heap) do not
 * trigger until some 64 MB have piled up. So a stranger's 25 MB body, read to count and hash it,
 * left ~25 MB of dead chunks in memory at its peak; a minor collection every few megabytes frees
 * them (young objects only: well under a millisecond on the controller's 2 MB semi-space).
 *
 * `gc` is taken from a fresh context, with the flag set only for that moment, so the process's own
 * global never carries it.
 */
export function youngGarbageCollector(): () => void {
  const exposed = (globalThis as { gc?: unknown }).gc;
  let gc = typeof exposed === "function" ? exposed : undefined;
  if (!gc) {
    try {
      setFlagsFromString("--expose-gc");
      const fromContext: unknown = runInNewContext("gc");
      if (typeof fromContext === "function") gc = fromContext;
    } catch {
      // A runtime that refuses the flag: chunks are then freed when V8 decides, as before.
    } finally {
      setFlagsFromString("--no-expose-gc");
    }
  }
  if (!gc) return () => undefined;
  const collect = gc as (options: { type: "minor" | "major" }) => void;
  return () => collect({ type: "minor" });
}
