/**
 * The ssh backend's health check: each host whose circuit allows it is asked, in one command, for
 * the tools the worker script needs and how many job folders it holds (and, for `doctor`, each
 * agent CLI's version). Through the backend's `onHost`, so the answer feeds the host's breaker.
 */
import type { NodeSSH } from "node-ssh";
import { remoteExec } from "../../remote/remote-exec.js";
import { shellQuote } from "../../remote/shell-quote.js";
import type { CircuitBreaker, CircuitState } from "./circuit-breaker.js";
import type { SshHostOptions } from "./ssh-backend.js";

export interface SshHostHealth {
  name: string;
  circuit: CircuitState;
  consecutiveFailures: number;
  /** Reachable and able to run the worker script (node and git found) at this check. */
  ok: boolean;
  slots: number;
  active: number | null;
  labels: string[];
  /** Tools missing on the host; `bwrap` or `prlimit` missing means the worker refuses to run agents there (unless LOCAL_SANDBOX=none). */
  missing: string[];
  error?: string;
  /** When asked for: each agent CLI's `--version` answer there (bin → first line), null when it is not found. */
  agentVersions?: Record<string, string | null>;
}

export interface SshHealthOptions {
  /**
   * Also ask each host for these commands' `--version`, found on `path` (the worker's PATH, by
   * default): for `doctor`, not for the periodic checks (a CLI can take a second to start).
   */
  agentVersions?: { bins: readonly string[]; path: string };
}

/** What the check reads of a host of the backend. */
export interface HealthCheckedHost {
  options: SshHostOptions;
  workRoot: string;
  breaker: Pick<CircuitBreaker, "state" | "consecutiveFailures">;
}

/** What the check needs from the backend, passed in rather than reached for. */
export interface SshHealthContext<H extends HealthCheckedHost> {
  hosts: readonly H[];
  /** Runs `fn` on the host's pooled connection through its circuit breaker. */
  onHost<T>(host: H, fn: (conn: NodeSSH) => Promise<T>): Promise<T>;
}

/** `agent <bin> <first line of --version>` or `agent <bin> -` per CLI: the host's answer is data, read by a fixed pattern. */
function agentVersionScript(o: NonNullable<SshHealthOptions["agentVersions"]>): string {
  const bins = o.bins.filter((b) => /^[a-z0-9-]+$/.test(b));
  if (bins.length === 0) return "";
  return (
    `; for a in ${bins.join(" ")}; do p=$(PATH=${shellQuote(o.path)} command -v "$a" 2>/dev/null) || { echo "agent $a -"; continue; }; ` +
    `echo "agent $a $(timeout 20 "$p" --version </dev/null 2>&1 | head -n 1 | tr -cd '[:print:]' | cut -c1-200)"; done`
  );
}

/** Connects to every host whose circuit allows it and checks node, git and bwrap there. */
export async function checkSshHealth<H extends HealthCheckedHost>(ctx: SshHealthContext<H>, healthOptions: SshHealthOptions = {}): Promise<SshHostHealth[]> {
  const { hosts, onHost } = ctx;
  const versions = healthOptions.agentVersions ? agentVersionScript(healthOptions.agentVersions) : "";
  return Promise.all(
    hosts.map(async (host): Promise<SshHostHealth> => {
      const base = { name: host.options.name, slots: host.options.slots, labels: host.options.labels };
      const node = shellQuote(host.options.nodePath ?? "node");
      try {
        const report = await onHost(host, async (conn) => {
          const r = await remoteExec(
            conn,
            `for t in ${node} git bwrap prlimit setsid timeout; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done; echo "dirs $(ls -1 -- ${shellQuote(host.workRoot)} 2>/dev/null | wc -l)"${versions}`,
          );
          const missing = [...r.stdout.matchAll(/^missing (.+)$/gm)].map((m) => m[1]!);
          const agentVersions = versions
            ? Object.fromEntries([...r.stdout.matchAll(/^agent ([a-z0-9-]+) ?(.*)$/gm)].map((m) => [m[1]!, m[2] === "-" ? null : m[2]!]))
            : undefined;
          const active = Number(/^dirs (\d+)/m.exec(r.stdout)?.[1] ?? 0);
          // The sandbox's tools are the worker's business: it refuses the job, with install advice, when they are missing.
          const fatal = missing.filter((t) => t !== "bwrap" && t !== "prlimit");
          if (fatal.length > 0) throw Object.assign(new Error(`${fatal.join(", ")} not found on the host`), { missing, active });
          return { missing, active, ...(agentVersions ? { agentVersions } : {}) };
        });
        return { ...base, ...report, ok: true, circuit: host.breaker.state, consecutiveFailures: 0 };
      } catch (err) {
        const e = err as Error & { missing?: string[]; active?: number };
        return {
          ...base,
          ok: false,
          active: e.active ?? null,
          missing: e.missing ?? [],
          error: e.message,
          circuit: host.breaker.state,
          consecutiveFailures: host.breaker.consecutiveFailures,
        };
      }
    }),
  );
}
