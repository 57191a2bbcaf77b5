import type { Logger } from "pino";
import { revokeWorkerToken } from "../github/revoke-worker-token.js";
import type { PipelineDeps } from "./deps.js";

/**
 * The worker token between mint and revoke, kept in the job's row sealed (src/secrets/seal.ts):
 * a controller that dies while a worker holds the token leaves it where the next one can open it
 * and revoke it. The token in clear is never written anywhere.
 */
export async function keepWorkerToken(deps: PipelineDeps, jobId: string, token: string): Promise<void> {
  await deps.store.setSealedWorkerToken(jobId, deps.sealer.seal(token, jobId));
}

/**
 * Revokes the kept token of a job, if there is one, and forgets it. `token` is the one the caller
 * holds in memory (the runner's own); without it the kept one is opened. A token that is already
 * invalid counts as revoked. A failed revoke keeps the sealed token and throws.
 */
export async function revokeKeptWorkerToken(deps: PipelineDeps, jobId: string, log: Pick<Logger, "info" | "warn">, token?: string): Promise<"revoked" | "already-invalid" | "none"> {
  const sealed = await deps.store.sealedWorkerToken(jobId);
  let clear = token;
  if (!clear && sealed) {
    clear = deps.sealer.open(sealed, jobId);
    // Sealed under another private key (rotated since) or damaged: nothing can revoke it now; it
    // expires within the hour of its minting.
    if (!clear) log.warn("the kept worker token cannot be opened (was the App's private key rotated?); it expires within the hour");
  }
  let outcome: "revoked" | "already-invalid" | "none" = "none";
  if (clear) {
    deps.redactor.add(clear);
    outcome = await revokeWorkerToken(deps.github.baseUrl, clear);
    log.info({ result: outcome }, "worker token revoked");
    // Dead now: no need to keep looking for it in every line.
    deps.redactor.forget(clear);
  }
  if (sealed) await deps.store.setSealedWorkerToken(jobId, null);
  return outcome;
}
