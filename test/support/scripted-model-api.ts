/**
 * A scripted model API on 127.0.0.1 for the real agent CLIs: the Anthropic Messages API (streamed
 * server-sent events, what Claude Code and opencode's `anthropic` provider speak) and the OpenAI
 * Responses API (streamed, what Codex speaks). Every answer comes from a script, so a test decides
 * what the "model" does: call the CLI's own shell tool with a command, or end with a message.
 *
 * Requests that offer no tools (titles, summaries, quota probes) get a short text answer and are
 * not counted as turns. Every request is recorded with its headers, so a test can check which key
 * reached the model and that the prompt arrived whole.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

/** One answer of the model: run a shell command with the CLI's shell tool, or end with text. */
export type ScriptedAnswer = { shell: string } | { text: string };

export interface ModelRequest {
  api: "anthropic" | "openai-responses";
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The raw body as received (the prompt is somewhere in it). */
  body: string;
  /** A turn: the request offered tools and got a scripted answer. */
  turn: boolean;
}

export interface ScriptedModelApi {
  url: string;
  requests: ModelRequest[];
  /** Scripted answers handed out so far. */
  turns(): number;
  close(): Promise<void>;
}

export interface ScriptOptions {
  /** The answer to the n-th turn (0-based); after the script runs out the model says "done". */
  script: (turn: number) => ScriptedAnswer;
  /** Tokens reported per turn. */
  usage?: { inputTokens: number; outputTokens: number };
  /** Largest request body accepted (a 1 MB discussion plus the CLI's own system prompt and tools). */
  maxBodyBytes?: number;
}

type Tool = { name?: string; type?: string; tools?: Tool[] };

/** Tool names, namespaces' members included (Codex nests its tools in namespaces). */
function toolNames(tools: Tool[]): string[] {
  return tools.flatMap((t) => [t.name ?? "", ...toolNames(Array.isArray(t.tools) ? t.tools : [])]);
}

/**
 * The tools a Responses request offers: in `tools`, or (Codex 0.17x) in an `additional_tools` item
 * of its input.
 */
function responsesTools(body: Record<string, any>): Tool[] {
  const listed: Tool[] = Array.isArray(body.tools) ? body.tools : [];
  const input: Array<{ type?: string; tools?: Tool[] }> = Array.isArray(body.input) ? body.input : [];
  return [...listed, ...input.filter((i) => i.type === "additional_tools").flatMap((i) => i.tools ?? [])];
}

/** The shell tool each CLI offers, and the argument object its schema wants. */
function shellCall(tools: Tool[], command: string): { name: string; input: Record<string, unknown> } {
  const names = toolNames(tools);
  if (names.includes("Bash")) return { name: "Bash", input: { command, description: "Edit the file" } }; // Claude Code
  if (names.includes("bash")) return { name: "bash", input: { command, description: "Edit the file" } }; // opencode
  // Codex 0.17x offers `exec` (JavaScript that calls its nested tools) and still runs a direct
  // `exec_command` call.
  if (names.includes("exec_command") || names.includes("exec")) return { name: "exec_command", input: { cmd: command } }; // Codex
  if (names.includes("shell")) return { name: "shell", input: { command: ["bash", "-lc", command] } }; // older Codex
  throw new Error(`the scripted model found no shell tool among: ${names.join(", ")}`);
}

function sse(res: http.ServerResponse, events: Array<{ event: string; data: unknown }>): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  for (const e of events) res.write(`event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
  res.end();
}

export async function startScriptedModelApi(options: ScriptOptions): Promise<ScriptedModelApi> {
  const requests: ModelRequest[] = [];
  const usage = options.usage ?? { inputTokens: 1000, outputTokens: 100 };
  const maxBody = options.maxBodyBytes ?? 8 * 1024 * 1024;
  let turn = 0;
  let ids = 0;

  const anthropic = (req: http.IncomingMessage, res: http.ServerResponse, record: ModelRequest, body: Record<string, any>) => {
    const model = String(body.model ?? "claude-sonnet-4-5");
    const tools: Tool[] = Array.isArray(body.tools) ? body.tools : [];
    let answer: ScriptedAnswer = { text: "A title" };
    if (tools.length > 0) {
      record.turn = true;
      answer = options.script(turn++);
    }
    const id = `msg_${++ids}`;
    const content =
      "shell" in answer
        ? (() => {
            const call = shellCall(tools, answer.shell);
            return { type: "tool_use", id: `toolu_${ids}`, name: call.name, input: call.input };
          })()
        : { type: "text", text: answer.text };
    const stopReason = content.type === "tool_use" ? "tool_use" : "end_turn";
    const u = { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    if (body.stream !== true) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id, type: "message", role: "assistant", model, content: [content], stop_reason: stopReason, stop_sequence: null, usage: u }));
      return;
    }
    const start =
      content.type === "tool_use"
        ? { type: "tool_use", id: (content as { id: string }).id, name: (content as { name: string }).name, input: {} }
        : { type: "text", text: "" };
    const delta =
      content.type === "tool_use"
        ? { type: "input_json_delta", partial_json: JSON.stringify((content as { input: unknown }).input) }
        : { type: "text_delta", text: (content as { text: string }).text };
    sse(res, [
      {
        event: "message_start",
        data: {
          type: "message_start",
          message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: { ...u, output_tokens: 1 } },
        },
      },
      { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: start } },
      { event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta } },
      { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
      {
        event: "message_delta",
        data: { type: "message_delta", delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.outputTokens } },
      },
      { event: "message_stop", data: { type: "message_stop" } },
    ]);
  };

  const responses = (res: http.ServerResponse, record: ModelRequest, body: Record<string, any>) => {
    const tools = responsesTools(body);
    let answer: ScriptedAnswer = { text: "A title" };
    if (tools.length > 0) {
      record.turn = true;
      answer = options.script(turn++);
    }
    const id = `resp_${++ids}`;
    const item =
      "shell" in answer
        ? (() => {
            const call = shellCall(tools, answer.shell);
            return { type: "function_call", id: `fc_${ids}`, call_id: `call_${ids}`, name: call.name, arguments: JSON.stringify(call.input) };
          })()
        : { type: "message", id: `msg_${ids}`, role: "assistant", status: "completed", content: [{ type: "output_text", text: answer.text, annotations: [] }] };
    const u = {
      input_tokens: usage.inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: usage.outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.inputTokens + usage.outputTokens,
    };
    sse(res, [
      { event: "response.created", data: { type: "response.created", response: { id, object: "response", status: "in_progress", output: [] } } },
      { event: "response.output_item.done", data: { type: "response.output_item.done", output_index: 0, item } },
      {
        event: "response.completed",
        data: { type: "response.completed", response: { id, object: "response", status: "completed", output: [item], usage: u } },
      },
    ]);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= maxBody) chunks.push(c);
    });
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const text = Buffer.concat(chunks).toString("utf8");
      const record: ModelRequest = {
        api: url.pathname.endsWith("/responses") ? "openai-responses" : "anthropic",
        path: url.pathname,
        headers: req.headers,
        body: text,
        turn: false,
      };
      requests.push(record);
      if (size > maxBody) {
        res.writeHead(413, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "request too large" } }));
        return;
      }
      let body: Record<string, any> = {};
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "bad json" } }));
        return;
      }
      try {
        if (req.method === "POST" && url.pathname.endsWith("/v1/messages")) return anthropic(req, res, record, body);
        if (req.method === "POST" && url.pathname.endsWith("/v1/messages/count_tokens")) {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ input_tokens: usage.inputTokens }));
          return;
        }
        if (req.method === "POST" && url.pathname.endsWith("/responses")) return responses(res, record, body);
        if (req.method === "GET" && url.pathname.endsWith("/models")) {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ object: "list", data: [], models: [] }));
          return;
        }
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: `not scripted: ${req.method} ${url.pathname}` } }));
      } catch (err) {
        res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: String(err) } }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    turns: () => turn,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
