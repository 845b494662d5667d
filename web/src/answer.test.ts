import { describe, expect, it } from "vitest";
import { applyEvent, metaParts, newAnswer, storedAnswer, tokensPerSecond } from "./answer";

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
