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
    warning: null,
  };
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
  status: string;
  model: string | null;
  generation_id: string | null;
  usage: { completion_tokens?: number } | null;
  ttft_ms: number | null;
  tokens_per_second: number | null;
  error?: { message: string; code?: string } | string | null;
  sources?: unknown;
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
  if (m.error) {
    a.error =
      typeof m.error === "string"
        ? { message: m.error, code: "error" }
        : { message: m.error.message, code: m.error.code ?? "error" };
  }
  return a;
}
