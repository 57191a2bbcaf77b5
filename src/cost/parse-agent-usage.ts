/**
 * What one line of an agent's output says about its model use. Only the formats the presets really
 * print are understood (each CLI's machine-readable mode, see src/agents/presets.ts); anything else
 * is no usage at all — a figure is never guessed.
 *
 * - claude-code `--output-format stream-json --verbose`: each `assistant` line carries its API
 *   message's id, model and usage; the closing `result` line the run's tokens and `total_cost_usd`.
 * - codex `exec --json`: `turn.completed` with the turn's `usage` (tokens, no dollars).
 * - opencode `run --format json`: `step_finish` with the step's `tokens` and `cost`.
 * - aider prints `Tokens: 2.1k sent, 150 received. Cost: $0.01 message, $0.03 session.`
 *
 * The agent's output is the agent's to write: a figure read here is its claim, kept as the agent's
 * report (see docs/architecture.md, "Model spend").
 */
export type UsageEvent =
  /** The CLI's own total for the run so far (claude-code's result, aider's session line). */
  | { kind: "total"; source: string; inputTokens?: number; outputTokens?: number; costUsd?: number; model?: string }
  /** One API message of a claude-code run; repeated lines of one message carry the same id. */
  | { kind: "message"; id: string; model?: string; inputTokens: number; cachedInputTokens: number; outputTokens: number }
  /** One step (opencode) or turn (codex) to add to the ones before. */
  | { kind: "step"; source: string; inputTokens: number; cachedInputTokens: number; outputTokens: number; costUsd?: number };

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);

/** The worker cuts log lines at 8000 characters: a long `result` line is read by its fields. */
function truncatedClaudeResult(text: string): UsageEvent | null {
  if (!/^\{.*"type":"result"/.test(text) && !text.startsWith('{"type":"result"')) return null;
  const field = (name: string) => {
    const m = new RegExp(`"${name}":(\\d+(?:\\.\\d+)?(?:[eE][-+]?\\d+)?)`).exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const usage = /"usage":\{[^{}]*/.exec(text)?.[0] ?? "";
  const inUsage = (name: string) => {
    const m = new RegExp(`"${name}":(\\d+)`).exec(usage);
    return m ? Number(m[1]) : 0;
  };
  const cost = field("total_cost_usd");
  if (cost === undefined && !usage) return null;
  return {
    kind: "total",
    source: "claude-code",
    costUsd: cost,
    inputTokens: inUsage("input_tokens") + inUsage("cache_creation_input_tokens") + inUsage("cache_read_input_tokens"),
    outputTokens: inUsage("output_tokens"),
  };
}

function fromJson(r: Record<string, any>): UsageEvent | null {
  if (r.type === "result") {
    const u = r.usage ?? {};
    return {
      kind: "total",
      source: "claude-code",
      ...(typeof r.total_cost_usd === "number" ? { costUsd: r.total_cost_usd } : {}),
      inputTokens: num(u.input_tokens) + num(u.cache_creation_input_tokens) + num(u.cache_read_input_tokens),
      outputTokens: num(u.output_tokens),
    };
  }
  if (r.type === "assistant" && r.message && typeof r.message.id === "string" && r.message.usage) {
    const u = r.message.usage;
    return {
      kind: "message",
      id: r.message.id,
      ...(typeof r.message.model === "string" ? { model: r.message.model } : {}),
      inputTokens: num(u.input_tokens) + num(u.cache_creation_input_tokens) + num(u.cache_read_input_tokens),
      cachedInputTokens: num(u.cache_read_input_tokens),
      outputTokens: num(u.output_tokens),
    };
  }
  if (r.type === "turn.completed" && r.usage) {
    // OpenAI counts cached input inside input_tokens, and reasoning inside output_tokens.
    return {
      kind: "step",
      source: "codex",
      inputTokens: num(r.usage.input_tokens),
      cachedInputTokens: num(r.usage.cached_input_tokens),
      outputTokens: num(r.usage.output_tokens),
    };
  }
  if (r.type === "step_finish" && r.part?.tokens) {
    const t = r.part.tokens;
    // opencode counts cache reads and writes apart from `input`.
    return {
      kind: "step",
      source: "opencode",
      inputTokens: num(t.input) + num(t.cache?.read) + num(t.cache?.write),
      cachedInputTokens: num(t.cache?.read),
      outputTokens: num(t.output) + num(t.reasoning),
      ...(typeof r.part.cost === "number" ? { costUsd: num(r.part.cost) } : {}),
    };
  }
  return null;
}

export function parseUsageLine(line: string): UsageEvent | null {
  const text = line.trim();
  if (text.startsWith("{")) {
    try {
      const r = JSON.parse(text) as unknown;
      return r && typeof r === "object" ? fromJson(r as Record<string, any>) : null;
    } catch {
      return truncatedClaudeResult(text);
    }
  }
  const aider = /Tokens:\s*([\d.]+)(k?)\s+sent,\s*([\d.]+)(k?)\s+received\.\s*Cost:\s*\$([\d.]+)\s+message,\s*\$([\d.]+)\s+session/i.exec(text);
  if (aider) {
    const n = (v: string, k: string) => Math.round(Number(v) * (k ? 1000 : 1));
    // Each message's line carries the session total so far.
    return { kind: "total", source: "aider", costUsd: Number(aider[6]), inputTokens: n(aider[1]!, aider[2]!), outputTokens: n(aider[3]!, aider[4]!) };
  }
  return null;
}
