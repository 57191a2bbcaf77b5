import nock from "nock";

export interface RecordedCall {
  method: string;
  path: string;
  /** Route with numbers and names folded, for counting (e.g. PATCH /repos/:o/:r/check-runs/:id). */
  route: string;
  body: any;
  authorization: string;
  /** When the request reached the fake (epoch ms), before its latency. */
  at: number;
}

export interface FakeGitHubOptions {
  owner: string;
  repo: string;
  installationId: number;
  /** Token the worker gets (the canary); the controller's own installation token is separate. */
  workerToken: string;
  controllerToken?: string;
  permission?: string | { status: number };
  /** Per-user permission, over `permission`. */
  permissions?: Record<string, string>;
  /** Branches `GET /branches/:branch` answers with `protected: true`. */
  protectedBranches?: string[];
  /** Comments already on the issue before the trigger (for the discussion snapshot). */
  discussion?: { id: number; author: string; body: string; bot?: boolean }[];
  /** `GET /pulls/:n`: the pull request's head branch, and whether it comes from a fork. */
  pull?: { headRef: string; fork?: boolean; state?: "open" | "closed"; /** The fork's clone URL. */ cloneUrl?: string };
  /** Inline review comments already on the pull request (`GET /pulls/:n/comments`). */
  reviewComments?: {
    id: number;
    reviewId: number;
    inReplyTo?: number;
    author: string;
    body: string;
    path: string;
    line: number | null;
    diffHunk: string;
    bot?: boolean;
  }[];
  /** Raw text of .github/agent-work.yml in the repo, or undefined for none (404). */
  repoConfigYaml?: string;
  baseSha: string;
  /** Milliseconds every answer takes (benchmarks: GitHub is not instant). */
  latencyMs?: number;
  /** What an earlier fake (another process, before a crash) had created: comments, PRs, check runs. */
  initialState?: FakeGitHubState;
  /**
   * Called once a call has had its effect and before its answer is sent: a test can persist the
   * state here, or end the process to lose the answer (the crash-matrix controller does).
   */
  onCall?: (call: RecordedCall) => void;
}

/** What the fake has created, as plain JSON (so another process can carry on from it). */
export interface FakeGitHubState {
  nextId: number;
  comments: [number, string][];
  pulls: any[];
  checkRuns: { id: number; head_sha: string; name: string; external_id: string; status: string; conclusion: string | null }[];
  /** `issue:<n>:eyes` or `comment:<id>:eyes` → reaction id (older state files have none). */
  reactions?: [string, number][];
}

/**
 * GitHub's REST API as nock interceptors on api.github.com, recording every call with its body.
 * Real response shapes, trimmed to the fields the app reads. Network is otherwise disabled.
 */
export function fakeGitHub(opts: FakeGitHubOptions) {
  const calls: RecordedCall[] = [];
  const latency = opts.latencyMs ?? 0;
  const controllerToken = opts.controllerToken ?? "ghs_controllerTokenForTheAppItself0000000";
  let nextId = opts.initialState?.nextId ?? 1000;
  const comments = new Map<number, string>(opts.initialState?.comments ?? []);
  const pulls: any[] = [...(opts.initialState?.pulls ?? [])];
  const checkRuns: FakeGitHubState["checkRuns"] = [...(opts.initialState?.checkRuns ?? [])];
  const reactions = new Map<string, number>(opts.initialState?.reactions ?? []);
  const react = (target: string, content: string): any[] => {
    const key = `${target}:${content}`;
    const existing = reactions.get(key);
    if (existing !== undefined) return [200, { id: existing, content }];
    const id = nextId++;
    reactions.set(key, id);
    return [201, { id, content }];
  };
  const repoPath = `/repos/${opts.owner}/${opts.repo}`;
  const reviewReplies: { id: number; in_reply_to_id: number; body: string }[] = [];

  function record(method: string, path: string, body: any, headers: Record<string, any>) {
    const route = path
      .split("?")[0]!
      .replace(`/repos/${opts.owner}/${opts.repo}`, "/repos/:owner/:repo")
      .replace(`/repos/${opts.owner}/.github`, "/repos/:owner/.github")
      .replace(/\/\d+(?=\/|$)/g, "/:id")
      .replace(/\/collaborators\/[^/]+/, "/collaborators/:user")
      .replace(/\/branches\/[^/]+/, "/branches/:branch")
      .replace(/\/commits\/[^/]+/, "/commits/:ref");
    const auth = headers.authorization;
    calls.push({
      method,
      path,
      route,
      body: typeof body === "string" && body ? safeJson(body) : body,
      authorization: Array.isArray(auth) ? auth[0] : (auth ?? ""),
      at: Date.now(),
    });
  }

  /** A handler that records the call, has its effect, then tells `onCall` before answering. */
  const handle = (method: string, fn: (uri: string, body: any) => any[]) =>
    function (this: { req: { headers: Record<string, any> } }, uri: string, body: any) {
      record(method, uri, method === "GET" ? null : body, this.req.headers);
      const answer = fn(uri, body);
      opts.onCall?.(calls.at(-1)!);
      return answer as [number, any];
    };

  const scope = nock("https://api.github.com").persist();
  scope
    .post(/\/app\/installations\/\d+\/access_tokens/)
    .delay(latency)
    .reply(
      handle("POST", (_uri: string, body: any) => {
        const scoped = body && typeof body === "object" && "repository_ids" in body;
        const expires = new Date(Date.now() + 3600_000).toISOString();
        return [
          201,
          {
            token: scoped ? opts.workerToken : controllerToken,
            expires_at: expires,
            permissions: scoped ? { contents: "write" } : {},
            repository_selection: scoped ? "selected" : "all",
          },
        ];
      }),
    )
    .get(/\/collaborators\/[^/]+\/permission/)
    .delay(latency)
    .reply(
      handle("GET", (uri: string) => {
        const user = uri.split("/")[5]!;
        const p = permissionsNow[user] ?? opts.permissions?.[user] ?? opts.permission ?? "write";
        if (typeof p === "object") return [p.status, { message: "boom" }];
        const permission = p === "maintain" ? "write" : p === "triage" ? "read" : p;
        return [200, { permission, role_name: p, user: { login: user } }];
      }),
    )
    .get(/\/contents\/\.github(%2F|\/)agent-work\.yml/)
    .delay(latency)
    .reply(
      handle("GET", (uri: string) => {
        if (uri.startsWith(repoPath + "/") && opts.repoConfigYaml !== undefined) {
          return [200, opts.repoConfigYaml, { "content-type": "application/vnd.github.raw; charset=utf-8" }];
        }
        return [404, { message: "Not Found" }];
      }),
    )
    // As GitHub does: one reaction per person, target and content; a repeat answers 200 with it.
    .post(/\/issues\/\d+\/reactions/)
    .delay(latency)
    .reply(handle("POST", (uri: string, body: any) => react(`issue:${uri.split("/issues/")[1]!.split("/")[0]}`, body?.content)))
    .post(/\/issues\/comments\/\d+\/reactions/)
    .delay(latency)
    .reply(handle("POST", (uri: string, body: any) => react(`comment:${uri.split("/comments/")[1]!.split("/")[0]}`, body?.content)))
    // Inline review comments: listed with their review, thread and place in the diff; replies go into a thread.
    .get(/\/pulls\/\d+\/comments/)
    .delay(latency)
    .reply(
      handle("GET", () => {
        const seeded = (opts.reviewComments ?? []).map((c) => ({
          id: c.id,
          pull_request_review_id: c.reviewId,
          ...(c.inReplyTo ? { in_reply_to_id: c.inReplyTo } : {}),
          body: c.body,
          path: c.path,
          line: c.line,
          original_line: c.line,
          diff_hunk: c.diffHunk,
          user: { login: c.author, type: c.bot ? "Bot" : "User" },
          created_at: "2020-01-01T00:00:00Z",
        }));
        const ours = reviewReplies.map((r) => ({ ...r, user: { login: "agent-work[bot]", type: "Bot" }, created_at: new Date().toISOString() }));
        return [200, [...seeded, ...ours]];
      }),
    )
    .post(/\/pulls\/\d+\/comments\/\d+\/replies/)
    .delay(latency)
    .reply(
      handle("POST", (uri: string, body: any) => {
        const inReplyTo = Number(uri.split("/comments/")[1]!.split("/")[0]);
        const root = (opts.reviewComments ?? []).find((c) => c.id === inReplyTo);
        // As GitHub does: replies go to the first comment of a thread, never to a reply.
        if (!root || root.inReplyTo) return [404, { message: "Not Found" }];
        const reply = {
          id: nextId++,
          in_reply_to_id: inReplyTo,
          pull_request_review_id: nextId++,
          body: body.body,
          path: root.path,
          line: root.line,
          diff_hunk: root.diffHunk,
        };
        reviewReplies.push(reply);
        return [201, reply];
      }),
    )
    .post(/\/pulls\/comments\/\d+\/reactions/)
    .delay(latency)
    .reply(handle("POST", (uri: string, body: any) => react(`review-comment:${uri.split("/comments/")[1]!.split("/")[0]}`, body?.content)))
    .get(/\/pulls\/\d+$/)
    .delay(latency)
    .reply(
      handle("GET", (uri: string) => {
        if (!opts.pull) return [404, { message: "Not Found" }];
        const number = Number(uri.split("/").pop());
        const base = { full_name: `${opts.owner}/${opts.repo}`, default_branch: "master" };
        return [
          200,
          {
            number,
            state: opts.pull.state ?? "open",
            head: {
              ref: opts.pull.headRef,
              sha: pullHeadSha(opts.pull.headRef),
              repo: { full_name: opts.pull.fork ? `someone/${opts.repo}` : base.full_name, ...(opts.pull.cloneUrl ? { clone_url: opts.pull.cloneUrl } : {}) },
            },
            base: { ref: "master", repo: base },
          },
        ];
      }),
    )
    .get(/\/branches\//)
    .delay(latency)
    .reply(
      handle("GET", (uri: string) => {
        const name = decodeURIComponent(uri.split("?")[0]!.split("/branches/")[1]!);
        const sha = branchSha ? branchSha(name) : opts.baseSha;
        return sha ? [200, { name, commit: { sha }, protected: opts.protectedBranches?.includes(name) ?? false }] : [404, { message: "Branch not found" }];
      }),
    )
    .post(/\/check-runs$/)
    .delay(latency)
    .reply(
      handle("POST", (_uri: string, body: any) => {
        const run = {
          id: nextId++,
          head_sha: body.head_sha,
          name: body.name,
          external_id: body.external_id ?? "",
          status: body.status ?? "queued",
          conclusion: body.conclusion ?? null,
        };
        checkRuns.push(run);
        return [201, { ...body, ...run }];
      }),
    )
    .patch(/\/check-runs\/\d+/)
    .delay(latency)
    .reply(
      handle("PATCH", (uri: string, body: any) => {
        const id = Number(uri.split("/").pop());
        const run = checkRuns.find((r) => r.id === id);
        if (run) Object.assign(run, { status: body.status ?? run.status, conclusion: body.conclusion ?? run.conclusion });
        return [200, { id, ...(body as object) }];
      }),
    )
    .get(/\/commits\/[^/]+\/check-runs/)
    .delay(latency)
    .reply(
      handle("GET", (uri: string) => {
        const ref = decodeURIComponent(uri.split("/commits/")[1]!.split("/")[0]!);
        const name = new URL(uri, "https://x").searchParams.get("check_name");
        const found = checkRuns.filter((r) => r.head_sha === ref && (!name || r.name === name));
        return [200, { total_count: found.length, check_runs: found }];
      }),
    )
    .post(/\/issues\/\d+\/comments/)
    .delay(latency)
    .reply(
      handle("POST", (_uri: string, body: any) => {
        const id = nextId++;
        comments.set(id, body.body);
        return [201, { id, body: body.body, html_url: `https://github.com/${opts.owner}/${opts.repo}/issues/1#issuecomment-${id}` }];
      }),
    )
    .get(/\/issues\/\d+\/comments/)
    .delay(latency)
    .reply(
      handle("GET", () => {
        const seeded = (opts.discussion ?? []).map((c) => ({
          id: c.id,
          body: c.body,
          user: { login: c.author, type: c.bot ? "Bot" : "User" },
          created_at: "2020-01-01T00:00:00Z",
        }));
        const ours = [...comments].map(([id, body]) => ({ id, body, user: { login: "agent-work[bot]", type: "Bot" }, created_at: new Date().toISOString() }));
        return [200, [...seeded, ...ours]];
      }),
    )
    .patch(/\/issues\/comments\/\d+/)
    .delay(latency)
    .reply(
      handle("PATCH", (uri: string, body: any) => {
        const id = Number(uri.split("/").pop());
        comments.set(id, body.body);
        return [200, { id, body: body.body }];
      }),
    )
    .get(/\/pulls\?/)
    .delay(latency)
    .reply(
      handle("GET", (uri: string) => {
        const head = new URL(uri, "https://x").searchParams.get("head")?.split(":")[1];
        return [200, pulls.filter((p) => p.head.ref === head)];
      }),
    )
    .post(/\/pulls$/)
    .delay(latency)
    .reply(
      handle("POST", (_uri: string, body: any) => {
        // As GitHub does: one open pull request per head branch.
        if (pulls.some((p) => p.head.ref === body.head)) {
          return [
            422,
            {
              message: "Validation Failed",
              errors: [{ resource: "PullRequest", code: "custom", message: `A pull request already exists for ${opts.owner}:${body.head}.` }],
            },
          ];
        }
        const number = 100 + pulls.length;
        const pr = {
          number,
          html_url: `https://github.com/${opts.owner}/${opts.repo}/pull/${number}`,
          draft: body.draft,
          head: { ref: body.head, sha: pullHeadSha(body.head) },
          base: { ref: body.base },
        };
        pulls.push(pr);
        return [201, pr];
      }),
    )
    .delete("/installation/token")
    .delay(latency)
    .reply(handle("DELETE", () => [204, ""]));

  let pullHeadSha: (branch: string) => string = () => "0".repeat(40);
  const permissionsNow: Record<string, FakeGitHubOptions["permission"]> = {};
  let branchSha: ((branch: string) => string | null) | undefined;

  return {
    calls,
    comments,
    pulls,
    /** Replies the app posted in review threads. */
    reviewReplies,
    controllerToken,
    checkRuns,
    /** Changes what the permission API answers for `user` from now on (access taken away mid-job). */
    setPermission(user: string, permission: NonNullable<FakeGitHubOptions["permission"]>) {
      permissionsNow[user] = permission;
    },
    /** Where the PR head sha comes from (the real git server's branch). */
    setPullHeadSha(fn: (branch: string) => string) {
      pullHeadSha = fn;
    },
    /** Where `GET /branches/:branch` looks (null: 404); without it every branch is at `baseSha`. */
    setBranchSha(fn: (branch: string) => string | null) {
      branchSha = fn;
    },
    /** Everything the fake has created, to hand to another fake (`initialState`). */
    state(): FakeGitHubState {
      return { nextId, comments: [...comments], pulls, checkRuns, reactions: [...reactions] };
    },
    callsTo(method: string, routePart: string) {
      return calls.filter((c) => c.method === method && c.route.includes(routePart));
    },
    done() {
      nock.cleanAll();
    },
  };
}

function safeJson(s: string) {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}
