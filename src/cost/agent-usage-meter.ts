import type { AgentUsage } from "./ledger.js";
import { parseUsageLine } from "./parse-agent-usage.js";
import { bundledModelPrices, priceTokens, type ModelPriceTable } from "./price-model-usage.js";

interface Counted {
  model?: string;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
}

/**
 * The model use of one job's agent so far, from its output line by line: what the live meter, the
 * job budget's stop and the final bill read. The CLI's own dollars win where it prints them
 * (claude-code's result, opencode's steps, aider); tokens alone are priced from the bundled table
 * by the job's model. Figures only grow: a later, smaller total (an agent printing a fake result
 * line) does not lower what was read before.
 */
export class AgentUsageMeter {
  private readonly messages = new Map<string, Counted>();
  private steps: (Counted & { source: string; costUsd: number; reportedCost: boolean }) | null = null;
  private total: AgentUsage | null = null;

  constructor(
    /** The model the job asked for (codex prints no model name). */
    private readonly model: string | undefined,
    private readonly prices: ModelPriceTable = bundledModelPrices,
  ) {}

  /** Reads one line; true when the figures changed. */
  read(line: string): boolean {
    const e = parseUsageLine(line);
    if (!e) return false;
    if (e.kind === "total") {
      const before = this.total;
      const max = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.max(a, b));
      this.total = {
        source: e.source,
        ...((e.model ?? this.model) ? { model: e.model ?? this.model } : {}),
        inputTokens: max(before?.inputTokens, e.inputTokens) ?? 0,
        outputTokens: max(before?.outputTokens, e.outputTokens) ?? 0,
        ...(max(before?.costUsd, e.costUsd) !== undefined ? { costUsd: max(before?.costUsd, e.costUsd)!, costSource: `reported by ${e.source}` } : {}),
      };
      return true;
    }
    if (e.kind === "message") {
      // stream-json repeats a message once per content block; its usage is the message's, not a sum.
      const seen = this.messages.get(e.id);
      this.messages.set(e.id, {
        model: e.model ?? seen?.model,
        inputTokens: Math.max(seen?.inputTokens ?? 0, e.inputTokens),
        cachedInputTokens: Math.max(seen?.cachedInputTokens ?? 0, e.cachedInputTokens),
        outputTokens: Math.max(seen?.outputTokens ?? 0, e.outputTokens),
      });
      return true;
    }
    const s = this.steps ?? { source: e.source, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, costUsd: 0, reportedCost: false };
    s.inputTokens += e.inputTokens;
    s.cachedInputTokens += e.cachedInputTokens;
    s.outputTokens += e.outputTokens;
    if (e.costUsd !== undefined) {
      s.costUsd += e.costUsd;
      s.reportedCost = true;
    }
    this.steps = s;
    return true;
  }

  usage(): AgentUsage | null {
    const running = this.running();
    if (!this.total) return running;
    // claude-code's result line names no model; its messages do.
    const total = !this.total.model && running?.model ? { ...this.total, model: running.model } : this.total;
    // The CLI's own total is the figure; the running estimate only shows through if it is larger.
    if (running?.costUsd !== undefined && (total.costUsd === undefined || running.costUsd > total.costUsd)) {
      return { ...total, costUsd: running.costUsd, costSource: running.costSource };
    }
    return total;
  }

  private running(): AgentUsage | null {
    if (this.messages.size > 0) {
      let inputTokens = 0;
      let outputTokens = 0;
      let usd = 0;
      let priced: string | undefined;
      let unpriced = false;
      let model: string | undefined;
      for (const m of this.messages.values()) {
        inputTokens += m.inputTokens;
        outputTokens += m.outputTokens;
        model ??= m.model;
        const p = priceTokens(m.model ?? this.model, m, this.prices);
        if (p) {
          usd += p.usd;
          priced = p.source;
        } else unpriced = true;
      }
      return {
        source: "claude-code",
        ...((model ?? this.model) ? { model: model ?? this.model } : {}),
        inputTokens,
        outputTokens,
        ...(priced && !unpriced ? { costUsd: usd, costSource: priced } : {}),
      };
    }
    if (this.steps) {
      const s = this.steps;
      const base: AgentUsage = { source: s.source, ...(this.model ? { model: this.model } : {}), inputTokens: s.inputTokens, outputTokens: s.outputTokens };
      if (s.reportedCost) return { ...base, costUsd: s.costUsd, costSource: `reported by ${s.source}` };
      const p = priceTokens(this.model, s, this.prices);
      return p ? { ...base, costUsd: p.usd, costSource: p.source } : base;
    }
    return null;
  }
}
