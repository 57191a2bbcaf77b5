import { GoogleAuth } from "google-auth-library";

/** Who the controller is to Google Cloud, from Application Default Credentials (gce and cloudrun checks). */
export async function adcPrincipal(): Promise<{ principal: string }> {
  const auth = new GoogleAuth({ scopes: ["https://www.googleapis.com/auth/cloud-platform"] });
  const client = await auth.getClient();
  await client.getAccessToken();
  const credentials = await auth.getCredentials().catch(() => ({ client_email: undefined }));
  return { principal: credentials.client_email ?? "your user credentials (gcloud auth application-default login)" };
}
