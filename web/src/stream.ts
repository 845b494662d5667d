/**
 * One generation followed live, across dropped connections.
 *
 *     POST /v1/streams (Accept: text/event-stream) ──► events ──► applyEvent ──► listeners
 *          │ the connection drops (read fails, or the body ends before done/error)
 *          ▼
 *     GET /v1/streams/{id}/events  Last-Event-ID: <last applied seq>   (backoff, then every 5 s)
 *          │ 410: the replay buffer moved on ─► GET /v1/streams/{id}: text + last_event_id,
 *          │                                   then follow from there
 *          │ 404: the server forgot the generation ─► "interrupted"
 *          ▼
 *     done / error ─► finished
 *
 * Stop is `DELETE /v1/streams/{id}`: the server cancels the model and the stream ends
 * with `done {finish_reason: "cancelled"}`, which the fold turns into "stopped".
 */

import { type Answer, applyEvent, newAnswer, TERMINAL } from "./answer";
import { type Api, ApiError, type StreamRequest, type TeamRequest } from "./api";
import { readEvents } from "./sse";

export type Connection = "live" | "reconnecting" | "offline";

// Quick retries first (a blip, a proxy restart); then "can't reach the server", still
// retrying every few seconds, with a "Retry now" button.
const BACKOFF_MS = [300, 1000, 2000];
const OFFLINE_RETRY_MS = 5000;

export class LiveGeneration {
  readonly answer: Answer;
  connection: Connection = "live";
  /** When the next reconnect attempt happens (for "retrying in 3 s"). */
  retryAt: number | null = null;
  readonly finished: Promise<void>;

  private readonly abort = new AbortController();
  private readonly listeners = new Set<() => void>();
  private stopRequested = false;
  private wake: (() => void) | null = null;

  private constructor(
    private readonly api: Api,
    answer: Answer,
    private readonly request: StreamRequest | TeamRequest | null,
    private readonly path = "v1/streams",
  ) {
    this.answer = answer;
    this.finished = this.run();
  }

  /** Start a new generation (or a team's answer: `path` "v1/team/stream"). */
  static start(api: Api, request: StreamRequest | TeamRequest, path = "v1/streams"): LiveGeneration {
    return new LiveGeneration(api, newAnswer(Date.now(), request.model ?? null), request, path);
  }

  /** Follow a generation that is already running (e.g. found "streaming" in history). */
  static attach(api: Api, generationId: string, model: string | null): LiveGeneration {
    const answer = newAnswer(Date.now(), model);
    answer.generationId = generationId;
    answer.status = "streaming";
    return new LiveGeneration(api, answer, null);
  }

  get id(): string | null {
    return this.answer.generationId;
  }

  /** Stop was asked for and the generation has not ended yet. */
  get stopping(): boolean {
    return this.stopRequested && !this.done;
  }

  get done(): boolean {
    return TERMINAL.has(this.answer.status);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reconnect now instead of waiting out the backoff. */
  retryNow(): void {
    this.wake?.();
  }

  /** Cancel the generation on the server; the partial answer stays. */
  async stop(): Promise<void> {
    if (this.done || this.stopRequested) return;
    this.stopRequested = true;
    this.notify();
    if (this.answer.generationId) await this.cancelOnServer();
    // else: cancelled as soon as the `start` event tells us the id
  }

  /** Stop following without cancelling anything (the page is going away). */
  detach(): void {
    this.abort.abort();
  }

  private async cancelOnServer(): Promise<void> {
    const id = this.answer.generationId;
    if (!id) return;
    try {
      await this.api.cancel(id);
    } catch {
      // The server is unreachable: stop reading, so it cancels once the grace period ends.
      this.finish("stopped");
      this.abort.abort();
      return;
    }
    // The stream brings `done {cancelled}`; settle from the state if it does not come soon.
    setTimeout(() => {
      if (!this.done) void this.settleFromState();
    }, 3000);
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  private finish(status: Answer["status"], error?: { message: string; code: string }): void {
    if (this.done) return;
    this.answer.status = status;
    if (error) this.answer.error = error;
    this.connection = "live";
    this.retryAt = null;
    this.notify();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let first = this.request !== null;
    while (!this.done && !this.abort.signal.aborted) {
      try {
        const response = first
          ? await this.api.startStream(this.request as StreamRequest | TeamRequest, this.abort.signal, this.path)
          : await this.resumeResponse();
        first = false;
        if (response === null) continue; // settled from the stream's state
        if (response.status === 204 || !response.body) {
          await this.settleFromState();
          return;
        }
        this.connection = "live";
        this.retryAt = null;
        attempt = 0;
        this.notify();
        for await (const sse of readEvents(response.body)) {
          this.apply(sse.event, sse.id, sse.data);
          if (this.done) return;
        }
        // The body ended without done/error: the connection was cut; resume.
      } catch (err) {
        if (this.abort.signal.aborted) return;
        if (err instanceof ApiError) {
          if (first || !this.answer.generationId) {
            this.finish("error", { message: err.message, code: err.code });
            return;
          }
          if (err.status === 404) {
            this.finish("interrupted", { message: "the server no longer has this answer", code: err.code });
            return;
          }
          if (err.status === 401 || err.status === 403) {
            this.finish("error", { message: err.message, code: err.code });
            return;
          }
          // 5xx and the like: try again like a dropped connection.
        }
        // NetworkError, or the body's read failing (a TypeError in browsers): resume.
        first = false;
      }
      if (this.done) return;
      if (!this.answer.generationId) {
        this.finish("error", {
          message: "the connection was lost before the answer started",
          code: "network",
        });
        return;
      }
      attempt += 1;
      const delay = BACKOFF_MS[attempt - 1];
      this.connection = delay === undefined ? "offline" : "reconnecting";
      await this.sleep(delay ?? OFFLINE_RETRY_MS);
    }
  }

  /** The events after the last one applied; null when settled from the state instead. */
  private async resumeResponse(): Promise<Response | null> {
    const id = this.answer.generationId as string;
    try {
      return await this.api.followStream(id, this.answer.lastSeq, this.abort.signal);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 410) throw err;
    }
    // The replay buffer no longer has what we missed: take the text so far, follow from there.
    const state = await this.api.streamState(id);
    this.answer.text = state.text;
    this.answer.lastSeq = state.last_event_id;
    this.notify();
    if (state.state !== "running" && state.state !== "queued") {
      await this.settleFromState();
      return null;
    }
    return this.api.followStream(id, this.answer.lastSeq, this.abort.signal);
  }

  private apply(name: string, id: string | null, data: string): void {
    const seq = id === null ? NaN : Number(id);
    if (!Number.isInteger(seq)) return;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    const applied = applyEvent(this.answer, { seq, name, data: parsed }, Date.now());
    if (!applied) return;
    if (name === "start" && this.stopRequested) void this.cancelOnServer();
    this.notify();
  }

  /** Finish from `GET /v1/streams/{id}` when the stream itself cannot tell us any more. */
  private async settleFromState(): Promise<void> {
    const id = this.answer.generationId;
    if (!id || this.done) return;
    try {
      const state = await this.api.streamState(id);
      if (state.text.length >= this.answer.text.length) this.answer.text = state.text;
      this.answer.serverTtftMs = state.ttft_ms;
      this.answer.serverTokensPerSecond = state.tokens_per_second;
      this.answer.completionTokens = state.usage?.completion_tokens ?? null;
      this.answer.finishReason = state.finish_reason;
      if (state.error) this.finish("error", state.error);
      else if (state.finish_reason === "cancelled") this.finish("stopped");
      else if (state.finish_reason) this.finish("complete");
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this.finish("interrupted", { message: "the server no longer has this answer", code: err.code });
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    this.retryAt = Date.now() + ms;
    this.notify();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener("abort", done);
        window.removeEventListener("online", done);
        this.wake = null;
        this.retryAt = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
      this.abort.signal.addEventListener("abort", done);
      window.addEventListener("online", done);
    });
  }
}
