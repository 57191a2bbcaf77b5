/**
 * Model spend from token counts, for a CLI that reports tokens but no dollars (codex): the bundled
 * table of the vendors' list prices (model-prices.json; source and date in PRICES.md). A model the
 * table does not know is not priced: its tokens are shown, its dollars are not guessed.
 */
import table from "./model-prices.json" with { type: "json" };

/** USD per million tokens; `cachedInput` for input tokens served from the provider's cache. */
export interface ModelPrice {
  input: number;
  output: number;
  cachedInput?: number;
}

export interface ModelPriceTable {
  source: { checked: string; pages: string[]; note: string };
  models: Record<string, ModelPrice>;
}

export const bundledModelPrices: ModelPriceTable = table;

/**
 * The table's entry for a model as the CLIs name it: `anthropic/claude-sonnet-4-5` (opencode's
 * provider prefix), `claude-haiku-4-5-20251001` (a dated snapshot) and `gpt-5-codex` all match.
 */
export function findModelPrice(model: string, prices: ModelPriceTable = bundledModelPrices): { name: string; price: ModelPrice } | undefined {
  const bare = model.includes("/") ? model.slice(model.lastIndexOf("/") + 1) : model;
  for (const name of [bare, bare.replace(/-\d{8}$/, ""), bare.replace(/-latest$/, "")]) {
    const price = prices.models[name];
    if (price) return { name, price };
  }
  return undefined;
}

/** What the tokens cost at the model's list price, or undefined when the table lacks the model. */
export function priceTokens(
  model: string | undefined,
  tokens: { inputTokens: number; outputTokens: number; cachedInputTokens?: number },
  prices: ModelPriceTable = bundledModelPrices,
): { usd: number; source: string } | undefined {
  const found = model ? findModelPrice(model, prices) : undefined;
  if (!found) return undefined;
  const cached = Math.min(tokens.cachedInputTokens ?? 0, tokens.inputTokens);
  const { price } = found;
  const usd = ((tokens.inputTokens - cached) * price.input + cached * (price.cachedInput ?? price.input) + tokens.outputTokens * price.output) / 1_000_000;
  return { usd, source: `${found.name} list price (checked ${prices.source.checked})` };
}
