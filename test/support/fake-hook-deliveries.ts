import { createPublicKey, randomUUID, verify } from "node:crypto";
import nock from "nock";
import { sign } from "@octokit/webhooks-methods";

/** A repository as `GET /installation/repositories` lists it (the fields the app reads). */
export interface FakeRepo {
  id: number;
  owner: string;
  name: string;
  cloneUrl: string;
  defaultBranch: string;
}

/** One attempt GitHub made to deliver one event, as its deliveries list keeps it. */
export interface FakeAttempt {
  id: number;
  guid: string;
  deliveredAt: number;
  redelivery: boolean;
  status: string;
  statusCode: number;
  event: string;
  action: string | null;
  installationId: number | null;
  repositoryId: number | null;
  payload: Record<string, any>;
}

interface FakeIssue {
  repoId: number;
  number: number;
  title: string;
  body: string;
  state: "open" | "closed";
  labels: Set<string>;
  comments: number;
  pullRequest: boolean;
  events: { id: number; event: string; label: { name: string }; actor: { login: string; type: string }; created_at: string }[];
}

export interface FakeHookDeliveriesOptions {
  /** Where GitHub sends this App's deliveries (the controller's webhook URL; it may change on a restart). */
  webhookUrl: () => string;
  secret: string;
  appId: number;
  /** The App's private key: listing deliveries and installations needs a JWT signed with it. */
  appPrivateKey: string;
  installations: { id: number; account: string }[];
  repos: FakeRepo[];
  /** Most deliveries GitHub returns on one page, whatever `per_page` asks (tests page with few). */
  pageSize?: number;
  /** Answer `POST /app/installations/:id/access_tokens` (when test/support/fake-github.ts does not). */
  mintTokens?: boolean;
  now?: () => number;
}

/**
 * The parts of GitHub that keep and redeliver an App's webhook deliveries, and that the label scan
 * reads, as nock interceptors on api.github.com beside test/support/fake-github.ts:
 *
 * - every event the fake "sends" is POSTed, signed with the webhook secret, to `webhookUrl()`, and
 *   the attempt (answered, refused, or unreachable) is kept in `GET /app/hook/deliveries`, newest
 *   first, paged with a `cursor` in the Link header, as GitHub does;
 * - `POST /app/hook/deliveries/:id/attempts` answers 202 and then really sends the stored payload
 *   again, with the same `X-GitHub-Delivery`, recording a new attempt (`redelivery: true`);
 * - `/app/*` answers only a JWT signed with the App's key; installation endpoints only a token;
 * - issues with labels and their event history (`/issues?labels=`, `/issues/:n/events`).
 */
export function fakeHookDeliveries(opts: FakeHookDeliveriesOptions) {
  const now = opts.now ?? Date.now;
  const publicKey = createPublicKey(opts.appPrivateKey);
  const attempts: FakeAttempt[] = [];
  const issues = new Map<string, FakeIssue>();
  /** Redelivery requests per guid. */
  const asked = new Map<string, number>();
  const requests: { method: string; path: string }[] = [];
  const inFlight = new Set<Promise<unknown>>();
  let nextAttemptId = 9_000_000;
  let nextEventId = 70_000;
  /** Attempts to refuse (of one guid, or of any when `guid` is unset), oldest rule first. */
  const refusals: { guid?: string; count: number; status: number }[] = [];
  let pageSize = opts.pageSize ?? 100;
  let listGate: Promise<void> | undefined;
  let redeliveryGate: Promise<void> | undefined;
  let onList: (() => void) | undefined;

  const key = (repoId: number, number: number) => `${repoId}#${number}`;
  const repoByName = (owner: string, name: string) => opts.repos.find((r) => r.owner === owner && r.name === name);

  function appJwtOk(authorization: string | undefined): boolean {
    const m = /^bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/i.exec(authorization ?? "");
    if (!m) return false;
    const valid = verify("RSA-SHA256", Buffer.from(`${m[1]}.${m[2]}`), publicKey, Buffer.from(m[3]!, "base64url"));
    if (!valid) return false;
    const claims = JSON.parse(Buffer.from(m[2]!, "base64url").toString("utf8"));
    return String(claims.iss) === String(opts.appId) && claims.exp * 1000 > now() - 60_000;
  }
  const tokenOk = (authorization: string | undefined) => /^token ghs_/i.test(authorization ?? "");

  /** GitHub's attempt: POST the payload, signed, and keep what happened. */
  async function attempt(guid: string, event: string, payload: Record<string, any>, redelivery: boolean): Promise<FakeAttempt> {
    const body = JSON.stringify(payload);
    let status = "OK";
    let statusCode = 200;
    const refusal = refusals.find((r) => r.count > 0 && (r.guid === undefined || r.guid === guid));
    if (refusal) {
      // Something in front of the controller (a load balancer, a proxy) refused it.
      refusal.count -= 1;
      statusCode = refusal.status;
      status = `Invalid HTTP Response: ${statusCode}`;
    } else {
      try {
        const res = await fetch(opts.webhookUrl(), {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/fake",
            "x-github-event": event,
            "x-github-delivery": guid,
            "x-github-hook-installation-target-type": "integration",
            "x-github-hook-installation-target-id": String(opts.appId),
            "x-hub-signature-256": await sign(opts.secret, body),
          },
          body,
        });
        await res.text();
        statusCode = res.status;
        if (res.status < 200 || res.status >= 300) status = `Invalid HTTP Response: ${res.status}`;
      } catch {
        statusCode = 0;
        status = "failed to connect to host";
      }
    }
    const made: FakeAttempt = {
      id: nextAttemptId++,
      guid,
      deliveredAt: now(),
      redelivery,
      status,
      statusCode,
      event,
      action: typeof payload.action === "string" ? payload.action : null,
      installationId: payload.installation?.id ?? null,
      repositoryId: payload.repository?.id ?? null,
      payload,
    };
    attempts.push(made);
    return made;
  }

  function track<T>(p: Promise<T>): Promise<T> {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  function asItem(a: FakeAttempt) {
    return {
      id: a.id,
      guid: a.guid,
      delivered_at: new Date(a.deliveredAt).toISOString(),
      redelivery: a.redelivery,
      duration: 0.05,
      status: a.status,
      status_code: a.statusCode,
      event: a.event,
      action: a.action,
      installation_id: a.installationId,
      repository_id: a.repositoryId,
      url: opts.webhookUrl(),
      throttled_at: null,
    };
  }

  const scope = nock("https://api.github.com").persist();
  const record = (method: string) =>
    function (this: { req: { headers: Record<string, any> } }, uri: string) {
      requests.push({ method, path: uri });
      const auth = this.req.headers.authorization;
      return Array.isArray(auth) ? auth[0] : auth;
    };

  scope
    .get(/^\/app\/hook\/deliveries(\?.*)?$/)
    .reply(async function (this: any, uri: string) {
      const auth = record("GET").call(this, uri);
      if (!appJwtOk(auth)) return [401, { message: "A JSON web token could not be decoded" }];
      onList?.();
      if (listGate) await listGate;
      const url = new URL(uri, "https://api.github.com");
      const perPage = Math.min(Number(url.searchParams.get("per_page") ?? 30), pageSize);
      const cursor = url.searchParams.get("cursor");
      const newestFirst = [...attempts].sort((a, b) => b.id - a.id);
      const start = cursor ? newestFirst.findIndex((a) => a.id < Number(cursor.replace(/^v1_/, ""))) : 0;
      const page = start < 0 ? [] : newestFirst.slice(start, start + perPage);
      const more = start >= 0 && start + perPage < newestFirst.length;
      const headers: Record<string, string> = {};
      if (more) headers.link = `<https://api.github.com/app/hook/deliveries?per_page=${perPage}&cursor=v1_${page.at(-1)!.id}>; rel="next"`;
      return [200, page.map(asItem), headers];
    })
    .get(/^\/app\/hook\/deliveries\/\d+$/)
    .reply(function (this: any, uri: string) {
      const auth = record("GET").call(this, uri);
      if (!appJwtOk(auth)) return [401, { message: "A JSON web token could not be decoded" }];
      const found = attempts.find((a) => a.id === Number(uri.split("/").pop()));
      if (!found) return [404, { message: "Not Found" }];
      return [
        200,
        {
          ...asItem(found),
          request: { headers: { "X-GitHub-Event": found.event, "X-GitHub-Delivery": found.guid }, payload: found.payload },
          response: { headers: {}, payload: null },
        },
      ];
    })
    .post(/^\/app\/hook\/deliveries\/\d+\/attempts$/)
    .reply(function (this: any, uri: string) {
      const auth = record("POST").call(this, uri);
      if (!appJwtOk(auth)) return [401, { message: "A JSON web token could not be decoded" }];
      const found = attempts.find((a) => a.id === Number(uri.split("/").at(-2)));
      if (!found) return [404, { message: "Not Found" }];
      asked.set(found.guid, (asked.get(found.guid) ?? 0) + 1);
      // Accepted now, delivered a moment later, as GitHub does.
      const gate = redeliveryGate ?? new Promise((resolve) => setImmediate(resolve));
      // settled() waits for it, and track() handles its rejection.
      void track(gate.then(() => attempt(found.guid, found.event, found.payload, true)));
      return [202, {}];
    })
    .get(/^\/app\/installations(\?.*)?$/)
    .reply(function (this: any, uri: string) {
      const auth = record("GET").call(this, uri);
      if (!appJwtOk(auth)) return [401, { message: "A JSON web token could not be decoded" }];
      return [200, opts.installations.map((i) => ({ id: i.id, account: { login: i.account, type: "Organization" }, app_id: opts.appId, suspended_at: null }))];
    })
    .get(/^\/installation\/repositories(\?.*)?$/)
    .reply(function (this: any, uri: string) {
      const auth = record("GET").call(this, uri);
      if (!tokenOk(auth)) return [401, { message: "Bad credentials" }];
      const repositories = opts.repos.map((r) => ({
        id: r.id,
        name: r.name,
        full_name: `${r.owner}/${r.name}`,
        owner: { login: r.owner },
        clone_url: r.cloneUrl,
        default_branch: r.defaultBranch,
        archived: false,
        open_issues_count: [...issues.values()].filter((i) => i.repoId === r.id && i.state === "open").length,
      }));
      return [200, { total_count: repositories.length, repositories }];
    })
    .get(/^\/repos\/[^/]+\/[^/]+\/issues\?/)
    .reply(function (this: any, uri: string) {
      const auth = record("GET").call(this, uri);
      if (!tokenOk(auth)) return [401, { message: "Bad credentials" }];
      const url = new URL(uri, "https://api.github.com");
      const [, , owner, name] = url.pathname.split("/");
      const repo = repoByName(owner!, name!);
      if (!repo) return [404, { message: "Not Found" }];
      const wanted = (url.searchParams.get("labels") ?? "").split(",").filter(Boolean);
      const state = url.searchParams.get("state") ?? "open";
      const found = [...issues.values()].filter((i) => i.repoId === repo.id && (state === "all" || i.state === state) && wanted.every((l) => i.labels.has(l)));
      return [
        200,
        found.map((i) => ({
          number: i.number,
          title: i.title,
          body: i.body,
          state: i.state,
          comments: i.comments,
          labels: [...i.labels].map((name) => ({ name })),
          ...(i.pullRequest ? { pull_request: { url: `https://api.github.com/repos/${repo.owner}/${repo.name}/pulls/${i.number}` } } : {}),
        })),
      ];
    })
    .get(/^\/repos\/[^/]+\/[^/]+\/issues\/\d+\/events(\?.*)?$/)
    .reply(function (this: any, uri: string) {
      const auth = record("GET").call(this, uri);
      if (!tokenOk(auth)) return [401, { message: "Bad credentials" }];
      const parts = new URL(uri, "https://api.github.com").pathname.split("/");
      const repo = repoByName(parts[2]!, parts[3]!);
      const issue = repo ? issues.get(key(repo.id, Number(parts[5]))) : undefined;
      if (!issue) return [404, { message: "Not Found" }];
      return [200, issue.events];
    });
  if (opts.mintTokens) {
    scope.post(/^\/app\/installations\/\d+\/access_tokens$/).reply(function (this: any, uri: string) {
      const auth = record("POST").call(this, uri);
      if (!appJwtOk(auth)) return [401, { message: "A JSON web token could not be decoded" }];
      return [
        201,
        {
          token: "ghs_fakeInstallationTokenForDeliveries0000",
          expires_at: new Date(now() + 3600_000).toISOString(),
          permissions: {},
          repository_selection: "all",
        },
      ];
    });
  }

  return {
    attempts,
    requests,
    /** How many times the controller asked for each guid to be redelivered. */
    asked,
    openIssue(repo: FakeRepo, number: number, over: { title?: string; body?: string; comments?: number; pullRequest?: boolean } = {}) {
      const issue: FakeIssue = {
        repoId: repo.id,
        number,
        title: over.title ?? `Issue ${number}`,
        body: over.body ?? "Please fix it.",
        state: "open",
        labels: new Set(),
        comments: over.comments ?? 0,
        pullRequest: over.pullRequest ?? false,
        events: [],
      };
      issues.set(key(repo.id, number), issue);
      return issue;
    },
    /**
     * Someone adds a label: the issue carries it, its history says who and when (`at`, default
     * now), and, unless `deliver: false` (a label from before the deliveries GitHub still lists),
     * GitHub sends `issues.labeled` with `payload`. Resolves to the delivery's guid.
     */
    async label(
      repo: FakeRepo,
      number: number,
      label: string,
      actor: { login: string; type?: "User" | "Bot" },
      options: { at?: number; payload?: Record<string, any>; deliver?: boolean } = {},
    ): Promise<string | undefined> {
      const issue = issues.get(key(repo.id, number));
      if (!issue) throw new Error(`no issue ${number}: openIssue first`);
      issue.labels.add(label);
      issue.events.push({
        id: nextEventId++,
        event: "labeled",
        label: { name: label },
        actor: { login: actor.login, type: actor.type ?? "User" },
        created_at: new Date(options.at ?? now()).toISOString(),
      });
      if (options.deliver === false || !options.payload) return undefined;
      return (await this.send("issues", options.payload)).guid;
    },
    /** GitHub sends an event to the App's webhook URL (one attempt, kept in the deliveries list). */
    send(event: string, payload: Record<string, any>): Promise<FakeAttempt> {
      return track(attempt(randomUUID(), event, payload, false));
    },
    /**
     * An attempt GitHub made that never reached the controller, recorded without sending: a proxy
     * that answered `statusCode` in its place (a 2xx from something that lost it, or a 5xx).
     */
    recordOnly(event: string, payload: Record<string, any>, statusCode: number, options: { at?: number } = {}): FakeAttempt {
      const made: FakeAttempt = {
        id: nextAttemptId++,
        guid: randomUUID(),
        deliveredAt: options.at ?? now(),
        redelivery: false,
        status: statusCode >= 200 && statusCode < 300 ? "OK" : `Invalid HTTP Response: ${statusCode}`,
        statusCode,
        event,
        action: typeof payload.action === "string" ? payload.action : null,
        installationId: payload.installation?.id ?? null,
        repositoryId: payload.repository?.id ?? null,
        payload,
      };
      attempts.push(made);
      return made;
    },
    /** The next `count` attempts (of `guid` only, if given) are answered `status` by something in front of the controller. */
    refuse(count: number, status = 503, guid?: string) {
      refusals.push({ count, status, ...(guid ? { guid } : {}) });
    },
    /** Most deliveries on one page of the list from now on. */
    setPageSize(size: number) {
      pageSize = size;
    },
    /** Holds every deliveries listing until the returned function is called; `listed` resolves at the first one held. */
    holdListing(): { listed: Promise<void>; release: () => void } {
      let release!: () => void;
      listGate = new Promise<void>((resolve) => (release = resolve));
      const listed = new Promise<void>((resolve) => (onList = resolve));
      return {
        listed,
        release: () => {
          listGate = undefined;
          onList = undefined;
          release();
        },
      };
    },
    /** Accepts redelivery requests but makes no attempt until the returned function is called. */
    holdRedeliveries(): () => void {
      let release!: () => void;
      redeliveryGate = new Promise<void>((resolve) => (release = resolve));
      return () => {
        redeliveryGate = undefined;
        release();
      };
    },
    /** Resolves once every delivery and redelivery under way has been attempted. */
    async settled(): Promise<void> {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    attemptsOf(guid: string): FakeAttempt[] {
      return attempts.filter((a) => a.guid === guid);
    },
  };
}

export type FakeHookDeliveries = ReturnType<typeof fakeHookDeliveries>;
