import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { answerAsync } from "./answer-async.js";

export interface FakeOAuthUser {
  login: string;
  id: number;
  name?: string;
  /** What this person may do on every repository: `none` answers 404, as GitHub does. */
  permission: "none" | "read" | "triage" | "write" | "maintain" | "admin";
}

export interface OAuthCall {
  method: string;
  path: string;
  /** The Authorization header's scheme and who it belongs to, never the token itself. */
  as?: string;
}

/**
 * GitHub's OAuth web flow and the two REST calls the job pages make with a person's token, on a
 * real HTTP server on 127.0.0.1, so a real browser can be sent to it (nock cannot catch Chromium).
 * The authorize page shows one "Sign in as <login>" button per user; the test clicks one.
 */
export async function startFakeGitHubOAuth(options: { clientId: string; clientSecret: string; users: FakeOAuthUser[]; tokenExpiresIn?: number }) {
  const codes = new Map<string, { login: string; redirectUri: string }>();
  const tokens = new Map<string, string>();
  const calls: OAuthCall[] = [];
  // A copy: setPermission() changes this server's users, never the caller's list.
  const users = options.users.map((u) => ({ ...u }));

  const send = (res: ServerResponse, status: number, body: unknown, type = "application/json") =>
    res.writeHead(status, { "content-type": type }).end(typeof body === "string" ? body : JSON.stringify(body));
  const readBody = async (req: IncomingMessage) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    return text;
  };
  const userFor = (req: IncomingMessage) => {
    const token = /^(?:Bearer|token) (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const login = token ? tokens.get(token) : undefined;
    return users.find((u) => u.login === login);
  };

  const server = createServer(
    answerAsync(async (req, res) => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const path = url.pathname;
      const who = userFor(req);
      calls.push({ method: req.method ?? "GET", path, ...(who ? { as: who.login } : {}) });

      if (req.method === "GET" && path === "/login/oauth/authorize") {
        if (url.searchParams.get("client_id") !== options.clientId) return send(res, 404, "unknown client", "text/plain");
        const redirectUri = url.searchParams.get("redirect_uri") ?? "";
        const state = url.searchParams.get("state") ?? "";
        const buttons = users
          .map((u) => {
            const code = randomBytes(10).toString("hex");
            codes.set(code, { login: u.login, redirectUri });
            const back = new URL(redirectUri);
            back.searchParams.set("code", code);
            back.searchParams.set("state", state);
            return `<p><a class="btn" id="as-${u.login}" href="${back.toString().replace(/&/g, "&amp;")}">Sign in as ${u.login}</a></p>`;
          })
          .join("\n");
        return send(
          res,
          200,
          `<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><title>Authorize agent-work (fake GitHub)</title>
<style>body{font-family:sans-serif;max-width:420px;margin:10vh auto;text-align:center}.btn{display:inline-block;padding:8px 16px;background:#1f883d;color:#fff;border-radius:6px;text-decoration:none}</style>
<h1>Fake GitHub</h1><p>agent-work wants to know who you are.</p>${buttons}`,
          "text/html",
        );
      }
      if (req.method === "POST" && path === "/login/oauth/access_token") {
        const body = JSON.parse((await readBody(req)) || "{}");
        const grant = codes.get(body.code);
        if (body.client_id !== options.clientId || body.client_secret !== options.clientSecret)
          return send(res, 200, { error: "incorrect_client_credentials" });
        if (!grant || grant.redirectUri !== body.redirect_uri) return send(res, 200, { error: "bad_verification_code" });
        codes.delete(body.code);
        const token = `ghu_${randomBytes(18).toString("hex")}`;
        tokens.set(token, grant.login);
        return send(res, 200, {
          access_token: token,
          token_type: "bearer",
          scope: "",
          ...(options.tokenExpiresIn ? { expires_in: options.tokenExpiresIn } : {}),
        });
      }
      if (path.startsWith("/api/v3/")) {
        const api = path.slice("/api/v3".length);
        const revoke = /^\/applications\/([^/]+)\/token$/.exec(api);
        if (req.method === "DELETE" && revoke) {
          const basic = Buffer.from((req.headers.authorization ?? "").replace(/^Basic /i, ""), "base64").toString();
          if (basic !== `${options.clientId}:${options.clientSecret}`) return send(res, 401, { message: "Bad credentials" });
          const token = JSON.parse((await readBody(req)) || "{}").access_token;
          tokens.delete(token);
          res.writeHead(204).end();
          return;
        }
        if (!who) return send(res, 401, { message: "Bad credentials" });
        if (req.method === "GET" && api === "/user") return send(res, 200, { login: who.login, id: who.id, name: who.name ?? null, type: "User" });
        const repo = /^\/repositories\/(\d+)$/.exec(api);
        if (req.method === "GET" && repo) {
          if (who.permission === "none") return send(res, 404, { message: "Not Found" });
          const rank = ["read", "triage", "write", "maintain", "admin"].indexOf(who.permission);
          return send(res, 200, {
            id: Number(repo[1]),
            private: true,
            permissions: { pull: rank >= 0, triage: rank >= 1, push: rank >= 2, maintain: rank >= 3, admin: rank >= 4 },
          });
        }
      }
      send(res, 404, { message: "Not Found" });
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    apiUrl: `${url}/api/v3`,
    calls,
    /** Tokens GitHub still honours (a revoked one is gone). */
    liveTokens: () => [...tokens.keys()],
    /** Changes what a person may do on every repository from now on (`none`: access removed). */
    setPermission: (login: string, permission: FakeOAuthUser["permission"]) => {
      const user = users.find((u) => u.login === login);
      if (!user) throw new Error(`no fake user ${login}`);
      user.permission = permission;
    },
    /** Makes GitHub forget every token, as when they expire. */
    expireAll: () => tokens.clear(),
    env: () => ({
      GITHUB_CLIENT_ID: options.clientId,
      GITHUB_CLIENT_SECRET: options.clientSecret,
      GITHUB_OAUTH_URL: url,
      GITHUB_OAUTH_API_URL: `${url}/api/v3`,
    }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type FakeGitHubOAuth = Awaited<ReturnType<typeof startFakeGitHubOAuth>>;
