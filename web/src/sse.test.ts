import { describe, expect, it } from "vitest";
import { readEvents, SseDecoder } from "./sse";

const STREAM =
  'id: 0\nevent: start\ndata: {"id":"g1"}\n\n' +
  ": ping\n\n" +
  'id: 1\nevent: token\ndata: {"text":"héllo 🌍"}\n\n' +
  'id: 2\nevent: done\ndata: {"finish_reason":"stop"}\n\n';

function decodeAll(chunks: string[]) {
  const decoder = new SseDecoder();
  return chunks.flatMap((c) => decoder.push(c));
}

function bodyOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

describe("SseDecoder", () => {
  it("decodes named events with ids and skips comments", () => {
    const events = decodeAll([STREAM]);
    expect(events.map((e) => [e.event, e.id])).toEqual([
      ["start", "0"],
      ["token", "1"],
      ["done", "2"],
    ]);
    expect(JSON.parse(events[1]!.data)).toEqual({ text: "héllo 🌍" });
  });

  it("takes a heartbeat line with no blank line after it (lmstream's form) as nothing", () => {
    const withPings = STREAM.replace(/\n\n/g, "\n\n: ping\n: ping\n");
    expect(decodeAll([withPings])).toEqual(decodeAll([STREAM]));
  });

  it("gives the same events whichever way the text is split", () => {
    const whole = decodeAll([STREAM]);
    for (let size = 1; size <= 7; size++) {
      const chunks: string[] = [];
      for (let i = 0; i < STREAM.length; i += size) chunks.push(STREAM.slice(i, i + size));
      expect(decodeAll(chunks)).toEqual(whole);
    }
  });

  it("accepts CRLF and CR line ends, a CR split from its LF included", () => {
    const crlf = STREAM.replace(/\n/g, "\r\n");
    const cr = STREAM.replace(/\n/g, "\r");
    const whole = decodeAll([STREAM]);
    expect(decodeAll([crlf])).toEqual(whole);
    expect(decodeAll([cr])).toEqual(whole);
    const at = crlf.indexOf("\r\n") + 1; // split between \r and \n
    expect(decodeAll([crlf.slice(0, at), crlf.slice(at)])).toEqual(whole);
  });

  it("joins multi-line data and keeps the last id for events without one", () => {
    const events = decodeAll(["id: 7\ndata: a\ndata: b\n\ndata:c\n\n"]);
    expect(events).toEqual([
      { event: "message", data: "a\nb", id: "7", retry: null },
      { event: "message", data: "c", id: "7", retry: null },
    ]);
  });

  it("does not dispatch an event the stream cut off", () => {
    expect(decodeAll(['id: 1\nevent: token\ndata: {"text":"x"}\n'])).toEqual([]);
  });
});

describe("readEvents", () => {
  it("reassembles multi-byte characters split across reads", async () => {
    const bytes = new TextEncoder().encode(STREAM);
    const emoji = STREAM.indexOf("🌍");
    // cut inside the 4-byte emoji and inside "é"
    const cutA = new TextEncoder().encode(STREAM.slice(0, STREAM.indexOf("é"))).length + 1;
    const cutB = new TextEncoder().encode(STREAM.slice(0, emoji)).length + 2;
    const chunks = [bytes.slice(0, cutA), bytes.slice(cutA, cutB), bytes.slice(cutB)];
    const events = [];
    for await (const event of readEvents(bodyOf(chunks))) events.push(event);
    expect(events).toHaveLength(3);
    expect(JSON.parse(events[1]!.data).text).toBe("héllo 🌍");
  });

  it("lets go of the body when the consumer stops early", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode('id: 0\nevent: start\ndata: {}\n\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const _ of readEvents(body)) break;
    expect(cancelled).toBe(true);
  });
});
