import type { Logger } from "pino";
import { revokeWorkerToken } from "../github/revoke-worker-token.js";
import { mintWorkerToken } from "../github/mint-worker-token.js";
import type { PipelineDeps } from "./deps.js";

/**
 * What the kept-token column holds while a mint is under way: the intent, with its time. A process
 * that dies between GitHub's answer and the sealed write leaves this, not a token: the answer
 * (the token) was never seen by anyone, and it expires an hour after the mint.
 */
const MINTING = "minting:";

/** GitHub's installation tokens live an hour from their mint. */
const TOKEN_LIFETIME_MS = 3_600_000;

/**
 * Mints the worker's token and keeps it sealed in the job's row (src/secrets/seal.ts) before it
 * leaves this function: no caller ever holds the token unsealed, so a controller that dies while
 * a worker holds it leaves it where the next one can open and revoke it. The intent is written
 * before the mint; a crash between GitHub's answer and the sealed write is the one window left,
 * and what it leaves is a token nobody saw (see revokeKeptWorkerToken). Never written in clear.
 */
export async function mintKeptWorkerToken(
  deps: PipelineDeps,
  job: { id: string; installationId: number; repoId: number },
  contents: "write" | "read" = "write",
): Promise<string> {
  await deps.store.setSealedWorkerToken(job.id, `${MINTING}${deps.now()}`);
  const { token } = await mintWorkerToken(await deps.github.asApp(), job.installationId, job.repoId, contents);
  deps.redactor.add(token);
  await deps.store.setSealedWorkerToken(job.id, deps.sealer.seal(token, job.id));
  return token;
}

/**
 * Revokes the kept token of a job, if there is one, and forgets it. `token` is the one the caller
 * holds in memory (the runner's own); without it the kept one is opened. A token that is already
 * invalid counts as revoked. A failed revoke keeps the sealed token and throws.
 */
export async function revokeKeptWorkerToken(
  deps: PipelineDeps,
  jobId: string,
  log: Pick<Logger, "info" | "warn">,
  token?: string,
): Promise<"revoked" | "already-invalid" | "none" | "lost"> {
  const sealed = await deps.store.sealedWorkerToken(jobId);
  if (sealed?.startsWith(MINTING) && !token) {
    // A mint whose answer no one heard. GitHub revokes a token only when shown it and lists none,
    // so it cannot be revoked; but no worker got it (the worker is handed a token only after it is
    // sealed), it was never written or logged, and it dies with the hour.
    const mintedBefore = Number(sealed.slice(MINTING.length)) || deps.now();
    const expiresBy = new Date(mintedBefore + TOKEN_LIFETIME_MS + 60_000).toISOString();
    log.warn({ expiresBy }, "a worker token may have been minted whose answer was lost; no worker ever received it, and it expires by itself");
    await deps.store.appendEvent(jobId, "worker-token-lost", { mintAsked: mintedBefore, expiresBy, handedToWorker: false });
    await deps.store.setSealedWorkerToken(jobId, null);
    return "lost";
  }
  let clear = token;
  if (!clear && sealed && !sealed.startsWith(MINTING)) {
    clear = deps.sealer.open(sealed, jobId);
    // Sealed under another private key (rotated since) or damaged: nothing can revoke it now; it
    // expires within the hour of its minting.
    if (!clear) log.warn("the kept worker token cannot be opened (was the App's private key rotated?); it expires within the hour");
  }
  let outcome: "revoked" | "already-invalid" | "none" = "none";
  if (clear) {
    deps.redactor.add(clear);
    outcome = await revokeWorkerToken(deps.github.baseUrl, clear, deps.github.fetch);
    log.info({ result: outcome }, "worker token revoked");
    // Dead now: no need to keep looking for it in every line.
    deps.redactor.forget(clear);
  }
  if (sealed) await deps.store.setSealedWorkerToken(jobId, null);
  return outcome;
}
