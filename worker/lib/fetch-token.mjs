// The job's token read from Secret Manager with the VM's own identity (GCE_TOKEN_DELIVERY=
// secret-manager), for a run whose input carries `tokenFrom` instead of the token.
//
// The VM's service account is the only member the secret's policy names; its access token comes
// from the metadata server, which only the worker's user reaches (the agent runs in a sandbox
// without that network). Both the access token and the job's token are secrets from the moment
// they are read: the caller adds them to the redaction list before anything else is written.

const METADATA = "http://metadata.google.internal";
const SECRET_MANAGER = "https://secretmanager.googleapis.com";
const CALL_TIMEOUT_MS = 20_000;
const MAX_BODY = 64 * 1024;
// A policy set a moment ago may take a little while to reach every Secret Manager replica.
const PERMISSION_RETRY_MS = [1000, 2000, 4000, 8000, 15000, 30000];

async function getJson(url, headers) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(CALL_TIMEOUT_MS), redirect: "error" });
  const text = await response.text();
  if (text.length > MAX_BODY) throw Object.assign(new Error(`${new URL(url).host} answered with more than ${MAX_BODY} bytes`), { status: response.status });
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON; reported by status below
  }
  if (!response.ok) {
    const message = typeof body?.error?.message === "string" ? body.error.message.slice(0, 300) : `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Returns `{ token, accessToken }`; throws with a message fit for the job's result (no secret in it).
 * `onSecret` is called with each secret as soon as it is known, so it is redacted from then on.
 */
export async function fetchTokenFromSecretManager(tokenFrom, onSecret) {
  const metadata = tokenFrom.metadataUrl ?? METADATA;
  const secretManager = tokenFrom.secretManagerUrl ?? SECRET_MANAGER;
  let identity;
  try {
    identity = await getJson(`${metadata}/computeMetadata/v1/instance/service-accounts/default/token`, { "Metadata-Flavor": "Google" });
  } catch (err) {
    throw new Error(`cannot get the VM's access token from the metadata server: ${err.message}`);
  }
  const accessToken = typeof identity?.access_token === "string" ? identity.access_token : "";
  if (!accessToken) throw new Error("the metadata server gave no access token (does the VM have a service account?)");
  onSecret(accessToken);

  for (let attempt = 0; ; attempt++) {
    try {
      const body = await getJson(`${secretManager}/v1/${tokenFrom.secretVersion}:access`, { authorization: `Bearer ${accessToken}` });
      const token = Buffer.from(String(body?.payload?.data ?? ""), "base64").toString("utf8");
      if (!token) throw new Error("the secret version is empty");
      onSecret(token);
      return { token, accessToken };
    } catch (err) {
      const retryable = err.status === undefined || err.status === 403 || err.status === 404 || err.status === 429 || err.status >= 500;
      if (!retryable || attempt >= PERMISSION_RETRY_MS.length) {
        throw new Error(`cannot read the job's token from Secret Manager (${tokenFrom.secretVersion}): ${err.message}`);
      }
      await sleep(PERMISSION_RETRY_MS[attempt]);
    }
  }
}
