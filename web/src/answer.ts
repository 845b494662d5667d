/**
 * An assistant answer as a fold over the native stream's events.
 *
 * `applyEvent(answer, event, now)` is pure bookkeeping — no DOM, no I/O — so the rules
 * that make resuming exact live in one testable place: an event whose sequence number
 * was already applied is ignored, which is what lets a reconnect replay from
 * `Last-Event-ID` without repeating a token.
 */

export type AnswerStatus =
  | "waiting" // request sent, nothing back yet
  | "queued" // the model is busy with other generations
  | "streaming"
  | "complete"
  | "stopped"
  | "interrupted"
  | "error";

export interface WireEvent {
  seq: number;
  name: string;
  data: Record<string, unknown>;
}

/** A retrieved passage the answer was given, cited in its text as `[number]`. */
export interface Source {
  number: number;
  title: string;
  source: string | null;
  snippet: string;
  score: number;
  document_id: string | null;
  chunk: number | null;
}

/** A server-side tool call inside an answer, with its live progress and result. */
export interface ToolPart {
  kind: "tool";
  /** The content block of the call (its `tool_call` deltas carry it). */
  index: number;
  callId: string;
  name: string;
  arguments: string;
  stage: string | null;
  percentage: number | null;
  message: string | null;
  /** Partial output, as the tool streamed it. */
  output: string;
  result: string | null;
  error: string | null;
  executionMs: number | null;
}

/** Text of the answer: block `index`, or one team member's message (`speaker`). */
export interface TextPart {
  kind: "text";
  index: number | null;
  text: string;
  speaker: string | null;
  round: number | null;
  model: string | null;
  /** A team member's message is whole (`message_done`). */
  done: boolean;
}

export type Part = TextPart | ToolPart;

export interface Answer {
  generationId: string | null;
  conversationId: string | null;
  model: string | null;
  text: string;
  status: AnswerStatus;
  /** Sequence number of the last applied event; -1 before the first. */
  lastSeq: number;
  queuePosition: number | null;
  progress: string | null;
  /** Token events received (the live count until `done` brings the usage). */
  tokens: number;
  completionTokens: number | null;
  startedAt: number;
  firstTokenAt: number | null;
  lastTokenAt: number | null;
  /** The server's figures once known, measured here until then. */
  serverTtftMs: number | null;
  serverTokensPerSecond: number | null;
  finishReason: string | null;
  error: { message: string; code: string } | null;
  /** The `sources` event's items (an answer from documents), else empty. */
  sources: Source[];
  /** The answer in order: text, tool calls with their runs, team members' messages. */
  parts: Part[];
  /** A `warning` event: e.g. the server could not keep this answer (`not_stored`). */
  warning: string | null;
}

export const TERMINAL: ReadonlySet<AnswerStatus> = new Set([
  "complete",
  "stopped",
  "interrupted",
  "error",
]);

export function newAnswer(now: number, model: string | null = null): Answer {
  return {
    generationId: null,
    conversationId: null,
    model,
    text: "",
    status: "waiting",
    lastSeq: -1,
    queuePosition: null,
    progress: null,
    tokens: 0,
    completionTokens: null,
    startedAt: now,
    firstTokenAt: null,
    lastTokenAt: null,
    serverTtftMs: null,
    serverTokensPerSecond: null,
    finishReason: null,
    error: null,
    sources: [],
    parts: [],
    warning: null,
  };
}

/** Whether the answer has more than plain text (tool calls, several speakers). */
export function structured(a: Answer): boolean {
  return a.parts.some((p) => p.kind === "tool" || p.speaker !== null);
}

function toolPart(a: Answer, callId: string): ToolPart | undefined {
  return a.parts.find((p): p is ToolPart => p.kind === "tool" && p.callId === callId);
}

function addText(a: Answer, text: string, index: number | null): void {
  const last = a.parts[a.parts.length - 1];
  if (last?.kind === "text" && !last.done && (last.speaker !== null || last.index === index)) last.text += text;
  else a.parts.push({ kind: "text", index, text, speaker: null, round: null, model: null, done: false });
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** The well-formed items of a `sources` list (from the event, `done` or a stored message). */
export function parseSources(value: unknown): Source[] {
  if (!Array.isArray(value)) return [];
  const sources: Source[] = [];
  for (const item of value as Record<string, unknown>[]) {
    const number = num(item?.number);
    const title = str(item?.title);
    if (number === null || title === null) continue;
    sources.push({
      number,
      title,
      source: str(item.source),
      snippet: str(item.snippet) ?? "",
      score: num(item.score) ?? 0,
      document_id: str(item.document_id),
      chunk: num(item.chunk),
    });
  }
  return sources;
}

/** Apply one event; returns false (and changes nothing) for one already applied. */
export function applyEvent(answer: Answer, event: WireEvent, now: number): boolean {
  if (event.seq <= answer.lastSeq) return false;
  answer.lastSeq = event.seq;
  const d = event.data;
  switch (event.name) {
    case "start":
      answer.generationId = str(d.id) ?? answer.generationId;
      answer.model = str(d.model) ?? answer.model;
      answer.conversationId = str(d.conversation_id) ?? answer.conversationId;
      break;
    case "queued":
      if (answer.status === "waiting" || answer.status === "queued") {
        answer.status = "queued";
        answer.queuePosition = num(d.position);
      }
      break;
    case "warning":
      answer.warning = str(d.message) ?? "warning";
      break;
    case "progress": {
      const pct = num(d.percentage);
      const message = str(d.message) ?? str(d.stage);
      // A finished stage (100%) says so in its message.
      answer.progress = message ? (pct === null || pct >= 100 ? message : `${message} ${Math.round(pct)}%`) : null;
      break;
    }
    case "token": {
      const text = str(d.text) ?? "";
      addText(answer, text, num(d.index) ?? 0);
      answer.text += text;
      answer.tokens += 1;
      answer.firstTokenAt ??= now;
      answer.lastTokenAt = now;
      answer.status = "streaming";
      answer.queuePosition = null;
      answer.progress = null;
      break;
    }
    case "sources":
      answer.sources = parseSources(d.items);
      break;
    case "done": {
      const reason = str(d.finish_reason);
      if (Array.isArray(d.sources)) answer.sources = parseSources(d.sources);
      answer.finishReason = reason;
      answer.status = reason === "cancelled" ? "stopped" : "complete";
      answer.serverTtftMs = num(d.ttft_ms);
      answer.serverTokensPerSecond = num(d.tokens_per_second);
      const usage = d.usage as Record<string, unknown> | null | undefined;
      answer.completionTokens = usage ? num(usage.completion_tokens) : null;
      answer.progress = null;
      answer.queuePosition = null;
      break;
    }
    case "tool_call": {
      const index = num(d.index) ?? 0;
      const last = answer.parts[answer.parts.length - 1];
      if (last?.kind === "tool" && last.index === index) last.arguments += str(d.arguments) ?? "";
      else {
        answer.parts.push({
          kind: "tool", index, callId: str(d.id) ?? `block-${index}`, name: str(d.name) ?? "tool",
          arguments: str(d.arguments) ?? "", stage: null, percentage: null, message: null, output: "",
          result: null, error: null, executionMs: null,
        }); // prettier-ignore
      }
      answer.status = "streaming";
      break;
    }
    case "tool_progress": {
      const part = toolPart(answer, str(d.call_id) ?? "");
      if (part) {
        part.stage = str(d.stage);
        part.percentage = num(d.percentage) ?? part.percentage;
        part.message = str(d.message);
      }
      break;
    }
    case "tool_chunk": {
      const part = toolPart(answer, str(d.call_id) ?? "");
      if (part) part.output += str(d.text) ?? "";
      break;
    }
    case "tool_result": {
      const part = toolPart(answer, str(d.call_id) ?? "");
      if (part) {
        part.result = str(d.result);
        part.error = str(d.error);
        part.executionMs = num(d.execution_ms);
        part.stage = part.error ? "failed" : "done";
      }
      break;
    }
    case "message_start":
      answer.parts.push({
        kind: "text", index: null, text: "", speaker: str(d.speaker) ?? "Member", round: num(d.round),
        model: str(d.model), done: false,
      }); // prettier-ignore
      answer.status = answer.status === "waiting" || answer.status === "queued" ? "streaming" : answer.status;
      break;
    case "message_done": {
      const last = answer.parts[answer.parts.length - 1];
      if (last?.kind === "text" && last.speaker !== null) last.done = true;
      break;
    }
    case "error":
      answer.status = "error";
      answer.error = { message: str(d.message) ?? "the generation failed", code: str(d.code) ?? "error" };
      answer.progress = null;
      break;
    default:
      break; // tool events, extensions' own events: nothing to show yet
  }
  return true;
}

/** Time to first token: the server's once known, else measured from sending. */
export function ttftMs(a: Answer): number | null {
  if (a.serverTtftMs !== null) return a.serverTtftMs;
  return a.firstTokenAt === null ? null : a.firstTokenAt - a.startedAt;
}

/** Tokens per second: the server's once known, else live over the tokens seen so far. */
export function tokensPerSecond(a: Answer, now: number): number | null {
  if (a.serverTokensPerSecond !== null) return a.serverTokensPerSecond;
  if (a.firstTokenAt === null || a.tokens < 2) return null;
  const end = TERMINAL.has(a.status) ? (a.lastTokenAt ?? now) : now;
  const seconds = (end - a.firstTokenAt) / 1000;
  return seconds > 0 ? (a.tokens - 1) / seconds : null;
}

export function tokenCount(a: Answer): number {
  return a.completionTokens ?? a.tokens;
}

/** The line under an answer: model · TTFT · tokens/s · tokens. */
export function metaParts(a: Answer, now: number): string[] {
  const parts: string[] = [];
  if (a.model) parts.push(a.model);
  const ttft = ttftMs(a);
  if (ttft !== null) parts.push(`TTFT ${formatMs(ttft)}`);
  const tps = tokensPerSecond(a, now);
  if (tps !== null) parts.push(`${tps.toFixed(1)} tok/s`);
  const count = tokenCount(a);
  if (count > 0 || TERMINAL.has(a.status)) parts.push(`${count} ${count === 1 ? "token" : "tokens"}`);
  return parts;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export interface StoredAnswer {
  content: string;
  tool_calls?: { id: string; name: string; arguments: string }[];
  name?: string | null;
  status: string;
  model: string | null;
  generation_id: string | null;
  usage: { completion_tokens?: number } | null;
  ttft_ms: number | null;
  tokens_per_second: number | null;
  error?: { message: string; code?: string } | string | null;
  sources?: unknown;
}

/** A stored tool message: the result of the call `tool_call_id` of an earlier answer. */
export function storedResult(a: Answer, callId: string, content: string, error: string | null): boolean {
  const part = toolPart(a, callId);
  if (!part) return false;
  part.result = error ? null : content;
  part.error = error;
  part.stage = error ? "failed" : "done";
  return true;
}

/** An answer loaded from the conversation history. */
export function storedAnswer(m: StoredAnswer): Answer {
  const a = newAnswer(0, m.model);
  a.generationId = m.generation_id;
  a.text = m.content;
  const known: AnswerStatus[] = ["complete", "stopped", "interrupted", "error", "streaming"];
  a.status = known.includes(m.status as AnswerStatus) ? (m.status as AnswerStatus) : "complete";
  a.serverTtftMs = m.ttft_ms;
  a.serverTokensPerSecond = m.tokens_per_second;
  a.completionTokens = m.usage?.completion_tokens ?? null;
  a.sources = parseSources(m.sources);
  if (m.name) {
    a.parts.push({ kind: "text", index: null, text: m.content, speaker: m.name, round: null, model: m.model, done: true });
  } else if (m.content) {
    a.parts.push({ kind: "text", index: 0, text: m.content, speaker: null, round: null, model: null, done: false });
  }
  for (const call of m.tool_calls ?? []) {
    a.parts.push({
      kind: "tool", index: a.parts.length, callId: call.id, name: call.name, arguments: call.arguments,
      stage: null, percentage: null, message: null, output: "", result: null, error: null, executionMs: null,
    }); // prettier-ignore
  }
  if (m.error) {
    a.error =
      typeof m.error === "string"
        ? { message: m.error, code: "error" }
        : { message: m.error.message, code: m.error.code ?? "error" };
  }
  return a;
}
