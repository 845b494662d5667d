import { describe, expect, it } from "vitest";
import { applyEvent, metaParts, newAnswer, storedAnswer, storedResult, structured, tokensPerSecond } from "./answer";

const start = { seq: 0, name: "start", data: { id: "g1", model: "m", conversation_id: "c1" } };
const token = (seq: number, text: string) => ({ seq, name: "token", data: { text } });

describe("applyEvent", () => {
  it("folds start, tokens and done into an answer", () => {
    const a = newAnswer(1000);
    applyEvent(a, start, 1000);
    applyEvent(a, token(1, "Hello "), 1100);
    applyEvent(a, token(2, "world"), 1200);
    expect(a).toMatchObject({ generationId: "g1", conversationId: "c1", text: "Hello world", status: "streaming" });
    applyEvent(a, { seq: 3, name: "done", data: { finish_reason: "stop", usage: { completion_tokens: 2 }, ttft_ms: 90, tokens_per_second: 10 } }, 1300);
    expect(a.status).toBe("complete");
    expect(metaParts(a, 1300)).toEqual(["m", "TTFT 90 ms", "10.0 tok/s", "2 tokens"]);
  });

  it("ignores events replayed after a resume, so no token repeats", () => {
    const a = newAnswer(0);
    for (const e of [start, token(1, "a "), token(2, "b ")]) applyEvent(a, e, 0);
    // the resumed stream replays from Last-Event-ID; a duplicate slips in
    expect(applyEvent(a, token(2, "b "), 0)).toBe(false);
    applyEvent(a, token(3, "c"), 0);
    expect(a.text).toBe("a b c");
  });

  it("marks a cancelled generation stopped and keeps its text", () => {
    const a = newAnswer(0);
    for (const e of [start, token(1, "partial")]) applyEvent(a, e, 0);
    applyEvent(a, { seq: 2, name: "done", data: { finish_reason: "cancelled", usage: null } }, 0);
    expect(a.status).toBe("stopped");
    expect(a.text).toBe("partial");
  });

  it("records errors", () => {
    const a = newAnswer(0);
    applyEvent(a, { seq: 0, name: "error", data: { message: "boom", code: "upstream_error" } }, 0);
    expect(a.status).toBe("error");
    expect(a.error).toEqual({ message: "boom", code: "upstream_error" });
  });

  it("measures live tokens per second until the server's figure arrives", () => {
    const a = newAnswer(0);
    applyEvent(a, token(1, "a"), 1000);
    expect(tokensPerSecond(a, 1000)).toBeNull();
    applyEvent(a, token(2, "b"), 1500);
    applyEvent(a, token(3, "c"), 2000);
    expect(tokensPerSecond(a, 2000)).toBeCloseTo(2);
  });

  it("keeps the sources that come before the first token, and done's list after a resume", () => {
    const item = { number: 1, title: "heapq", source: "/doc/heapq.html", snippet: "Heaps…", score: 3.5, document_id: "doc_1", chunk: 2 };
    const a = newAnswer(0);
    applyEvent(a, start, 0);
    applyEvent(a, { seq: 1, name: "sources", data: { items: [item, { number: "x" }] } }, 0);
    expect(a.sources).toEqual([item]); // the malformed item is left out
    expect(a.status).toBe("waiting");
    const resumed = newAnswer(0); // joined after the sources event: done brings them
    applyEvent(resumed, { seq: 5, name: "done", data: { finish_reason: "stop", sources: [item] } }, 0);
    expect(resumed.sources).toEqual([item]);
    const stored = storedAnswer({
      content: "A heap [1].", status: "complete", model: "m", generation_id: "g", usage: null,
      ttft_ms: null, tokens_per_second: null, sources: [item],
    });
    expect(stored.sources).toEqual([item]);
  });
});

describe("parts", () => {
  const ev = (seq: number, name: string, data: Record<string, unknown>) => ({ seq, name, data });

  it("puts a tool call inline, with its live progress, output and result, then the text after it", () => {
    const a = newAnswer(0);
    const events = [
      start,
      ev(1, "token", { text: "Let me count." }),
      ev(2, "tool_call", { index: 1, id: "call_1", name: "count", arguments: '{"n"' }),
      ev(3, "tool_call", { index: 1, id: null, name: null, arguments: ":2}" }),
      ev(4, "tool_progress", { call_id: "call_1", stage: "counting", percentage: 50, message: "at 1" }),
      ev(5, "tool_chunk", { call_id: "call_1", text: "Number 1. " }),
    ];
    for (const e of events) applyEvent(a, e, 0);
    expect(structured(a)).toBe(true);
    expect(a.parts).toMatchObject([
      { kind: "text", text: "Let me count.", index: 0 },
      { kind: "tool", callId: "call_1", name: "count", arguments: '{"n":2}', stage: "counting", percentage: 50, output: "Number 1. ", result: null },
    ]);
    applyEvent(a, ev(6, "tool_result", { call_id: "call_1", name: "count", result: "counted to 2", execution_ms: 12, error: null }), 0);
    applyEvent(a, ev(7, "token", { text: "Done: 2.", index: 2 }), 0);
    expect(a.parts[1]).toMatchObject({ result: "counted to 2", stage: "done", executionMs: 12 });
    expect(a.parts[2]).toMatchObject({ kind: "text", text: "Done: 2.", index: 2 });
    expect(a.text).toBe("Let me count.Done: 2.");
  });

  it("gives each team member's message a part of its own", () => {
    const a = newAnswer(0);
    applyEvent(a, start, 0);
    applyEvent(a, ev(1, "message_start", { speaker: "Ann", round: 1, model: "m" }), 0);
    applyEvent(a, ev(2, "token", { text: "Yes." }), 0);
    applyEvent(a, ev(3, "message_done", { speaker: "Ann", round: 1 }), 0);
    applyEvent(a, ev(4, "message_start", { speaker: "Bob", round: 1, model: "m" }), 0);
    applyEvent(a, ev(5, "token", { text: "No", index: 1 }), 0);
    applyEvent(a, ev(6, "token", { text: ".", index: 1 }), 0);
    expect(a.parts.map((p) => (p.kind === "text" ? [p.speaker, p.text, p.done] : null))).toEqual([
      ["Ann", "Yes.", true],
      ["Bob", "No.", false],
    ]);
  });

  it("rebuilds stored steps: calls from the answer, results from tool messages", () => {
    const a = storedAnswer({
      content: "", status: "complete", model: "m", generation_id: "g", usage: null, ttft_ms: null,
      tokens_per_second: null, tool_calls: [{ id: "call_1", name: "calculator", arguments: '{"expression":"6*7"}' }],
    });
    expect(storedResult(a, "call_1", "42", null)).toBe(true);
    expect(storedResult(a, "call_9", "?", null)).toBe(false);
    expect(a.parts).toMatchObject([{ kind: "tool", name: "calculator", result: "42", stage: "done" }]);
    const member = storedAnswer({ content: "Hm.", status: "complete", model: "m", generation_id: "g", usage: null,
      ttft_ms: null, tokens_per_second: null, name: "Skeptic" }); // prettier-ignore
    expect(member.parts).toMatchObject([{ kind: "text", speaker: "Skeptic", text: "Hm.", done: true }]);
  });
});
