import type { AgentUsage } from "./ledger.js";

/**
 * Reads what an agent says about its own model use from one line of its output, merging it into
 * what was read before. Only formats the presets really print are understood; anything else
 * leaves the usage as it was — a figure is never guessed.
 *
 * - claude-code with `--output-format stream-json` ends with a `{"type":"result", "total_cost_usd": …,
 *   "usage": {"input_tokens": …, "output_tokens": …}}` line.
 * - aider prints `Tokens: 2.1k sent, 150 received. Cost: $0.01 message, $0.03 session.`
 * - codex exec prints `tokens used: 1234`.
 */
export function parseAgentUsageLine(line: string, before: AgentUsage | null): AgentUsage | null {
  const text = line.trim();
  if (text.startsWith("{") && text.includes('"type":"result"')) {
    try {
      const r = JSON.parse(text) as { type?: string; total_cost_usd?: unknown; usage?: { input_tokens?: unknown; output_tokens?: unknown } };
      if (r.type === "result") {
        const usage: AgentUsage = { source: "claude-code result" };
        if (typeof r.total_cost_usd === "number") usage.costUsd = r.total_cost_usd;
        if (typeof r.usage?.input_tokens === "number") usage.inputTokens = r.usage.input_tokens;
        if (typeof r.usage?.output_tokens === "number") usage.outputTokens = r.usage.output_tokens;
        return usage;
      }
    } catch {
      return before;
    }
  }
  const aider = /Tokens:\s*([\d.]+)(k?)\s+sent,\s*([\d.]+)(k?)\s+received\.\s*Cost:\s*\$([\d.]+)\s+message,\s*\$([\d.]+)\s+session/i.exec(text);
  if (aider) {
    const n = (v: string, k: string) => Math.round(Number(v) * (k ? 1000 : 1));
    // Each message's line carries the session total so far; the last one wins.
    return { source: "aider", costUsd: Number(aider[6]), inputTokens: n(aider[1]!, aider[2]!), outputTokens: n(aider[3]!, aider[4]!) };
  }
  const codex = /^tokens used:\s*([\d,]+)$/i.exec(text);
  if (codex) return { source: "codex", totalTokens: Number(codex[1]!.replace(/,/g, "")) };
  return before;
}
