import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { STYLE_CSS } from "../assets/style.js";
import { JOB_PAGE_JS } from "../assets/job-page-script.js";

const version = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 10);

const ASSETS: Record<string, { type: string; body: string }> = {
  "/assets/agent-work.css": { type: "text/css; charset=utf-8", body: STYLE_CSS },
  "/assets/job-page.js": { type: "text/javascript; charset=utf-8", body: JOB_PAGE_JS },
};

/** Asset URLs with a content hash, so a new release is never served a cached old file. */
export const STYLE_URL = `/assets/agent-work.css?v=${version(STYLE_CSS)}`;
export const SCRIPT_URL = `/assets/job-page.js?v=${version(JOB_PAGE_JS)}`;

/** The stylesheet and the script: public (they hold no data), cacheable for a day. */
export function serveAsset(path: string, res: ServerResponse): boolean {
  const asset = ASSETS[path];
  if (!asset) return false;
  res.writeHead(200, { "content-type": asset.type, "cache-control": "public, max-age=86400", "x-content-type-options": "nosniff" }).end(asset.body);
  return true;
}
