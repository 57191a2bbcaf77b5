/**
 * A new smee.io channel: smee.io answers `/new` with a redirect to a fresh channel URL (what
 * smee-client's `createChannel` does; we do it with fetch instead of depending on smee-client,
 * which Probot only loads through `npx`, and whose undici 7 wants a newer Node than ours).
 */
export async function createSmeeChannel(options: { base?: string; fetch?: typeof fetch; timeoutMs?: number } = {}): Promise<string> {
  const base = (options.base ?? "https://smee.io").replace(/\/+$/, "");
  const res = await (options.fetch ?? fetch)(`${base}/new`, { method: "HEAD", redirect: "manual", signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
  const location = res.headers.get("location");
  if (!location) throw new Error(`${base}/new answered ${res.status} without a channel to redirect to`);
  return new URL(location, base).toString();
}
