/**
 * An incremental Server-Sent Events decoder (the WHATWG "event stream" rules).
 *
 * `SseDecoder.push(text)` takes whatever a read returned — half an event, three events,
 * a `\r` whose `\n` comes in the next read — and returns the events completed so far.
 * `readEvents(body)` puts a `TextDecoder` with `stream: true` in front of it, so a
 * multi-byte character split across two reads arrives whole.
 */

export interface SseEvent {
  /** `event:` field; "message" when absent. */
  event: string;
  /** `data:` lines joined with "\n". */
  data: string;
  /** `id:` of this event, or the last one seen before it (as the spec's "last event ID"). */
  id: string | null;
  /** `retry:` in milliseconds, when the event carried one. */
  retry: number | null;
}

export class SseDecoder {
  private buffer = "";
  private eventType = "";
  private dataLines: string[] = [];
  private hasData = false;
  private retry: number | null = null;
  private lastId: string | null = null;
  /** The previous chunk ended in "\r": a "\n" starting the next one belongs to it. */
  private pendingCr = false;

  push(chunk: string): SseEvent[] {
    let text = chunk;
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const lf = this.buffer.indexOf("\n", start);
      const cr = this.buffer.indexOf("\r", start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        end = cr;
        if (cr + 1 < this.buffer.length) {
          next = this.buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
        } else {
          next = cr + 1;
          this.pendingCr = true;
        }
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      const event = this.line(this.buffer.slice(start, end));
      if (event) events.push(event);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** The last `id:` seen, for resuming with `Last-Event-ID`. */
  get lastEventId(): string | null {
    return this.lastId;
  }

  private line(line: string): SseEvent | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null; // a comment (heartbeat)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): SseEvent | null {
    const event: SseEvent | null = this.hasData
      ? {
          event: this.eventType || "message",
          data: this.dataLines.join("\n"),
          id: this.lastId,
          retry: this.retry,
        }
      : null;
    this.eventType = "";
    this.dataLines = [];
    this.hasData = false;
    this.retry = null;
    return event;
  }
}

/** Decode a response body into SSE events as bytes arrive. */
export async function* readEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<SseEvent, void, undefined> {
  const reader = body.getReader();
  const text = new TextDecoder("utf-8");
  const decoder = new SseDecoder();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* decoder.push(text.decode(value, { stream: true }));
    }
    finished = true;
    yield* decoder.push(text.decode());
  } finally {
    // The consumer stopped early (or the read failed): let go of the connection.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
