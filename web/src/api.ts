/**
 * The page's only door to the server: lmstream's public native API, nothing private.
 *
 * Paths are relative to the page, so a proxy may mount lmstream under a prefix. Every
 * failure becomes one of two errors: `ApiError` (the server answered with an error
 * status and its `{"error": {...}}` body) or `NetworkError` (no answer at all).
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export class NetworkError extends Error {
  constructor(message = "the server cannot be reached") {
    super(message);
    this.name = "NetworkError";
  }
}

export interface Health {
  status: string;
  auth_required: boolean;
  models?: { name: string; supports_images?: boolean; tokens_generated?: number }[];
}

export interface Profile {
  name: string;
  description?: string | null;
  model?: string | null;
}

export interface Collection {
  name: string;
  description: string;
  document_count: number;
}

export interface Conversation {
  id: string;
  title: string | null;
  created_at: string | number;
  updated_at: string | number;
  model: string | null;
  profile: string | null;
  message_count: number;
}

export type MessageStatus = "streaming" | "complete" | "stopped" | "interrupted" | "error";

export interface StoredMessage {
  id: string;
  role: "user" | "assistant" | "system" | "tool";
  content: string;
  status: MessageStatus;
  model: string | null;
  generation_id: string | null;
  usage: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
  ttft_ms: number | null;
  tokens_per_second: number | null;
  created_at: string | number;
  error?: { message: string; code?: string } | string | null;
  /** The numbered passages an answer from documents was given. */
  sources?: unknown;
  /** An assistant's calls; a tool message's call and tool; a team member's name. */
  tool_calls?: { id: string; name: string; arguments: string }[];
  tool_call_id?: string | null;
  name?: string | null;
}

export interface ConversationDetail extends Conversation {
  messages: StoredMessage[];
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface StreamState {
  id: string;
  state: string;
  text: string;
  finish_reason: string | null;
  model: string;
  usage: { completion_tokens?: number } | null;
  ttft_ms: number | null;
  tokens_per_second: number | null;
  error: { message: string; code: string } | null;
  last_event_id: number;
  conversation_id: string | null;
}

export interface StreamRequest {
  prompt: string;
  /** Images as data: URLs, for a model that accepts them. */
  images?: string[];
  /** Earlier turns, sent only when the server keeps no conversations. */
  messages?: { role: "user" | "assistant"; content: string }[];
  model?: string;
  profile?: string;
  conversation_id?: string;
  /** Answer from this collection's documents (sources first, then a cited answer). */
  collection?: string;
  /** Server-side tools the model may call (their runs stream inline). */
  tools?: string[];
}

/** `POST /v1/team/stream`: members answer in rounds (the server's default team). */
export interface TeamRequest {
  question: string;
  model?: string;
  conversation_id?: string;
  rounds?: number;
  moderator?: boolean;
}

export interface Tool {
  name: string;
  description: string;
}

export class Api {
  constructor(private readonly apiKey: () => string) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const key = this.apiKey();
    return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
  }

  /** `fetch` with the API key; network failures become `NetworkError`, error statuses `ApiError`. */
  async send(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const headers = this.headers(init.headers);
    if (init.body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
        cache: "no-store",
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new NetworkError();
    }
    if (!response.ok) throw await toApiError(response);
    return response;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.send(method, path, { body });
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  health(): Promise<Health> {
    return this.json("GET", "health");
  }

  async models(): Promise<string[]> {
    const body = await this.json<{ data: { id: string }[] }>("GET", "v1/models");
    return body.data.map((m) => m.id);
  }

  async tools(): Promise<Tool[]> {
    const body = await this.json<{ data: Tool[] }>("GET", "v1/tools");
    return body.data;
  }

  profiles(): Promise<{ data: Profile[]; default: string | null }> {
    return this.json("GET", "v1/profiles");
  }

  async collections(): Promise<Collection[]> {
    return (await this.json<{ data: Collection[] }>("GET", "v1/collections")).data;
  }

  conversations(query: { q?: string; cursor?: string | null; limit?: number }): Promise<Page<Conversation>> {
    const params = new URLSearchParams({ limit: String(query.limit ?? 30) });
    if (query.q) params.set("q", query.q);
    if (query.cursor) params.set("cursor", query.cursor);
    return this.json("GET", `v1/conversations?${params}`);
  }

  conversation(id: string): Promise<ConversationDetail> {
    return this.json("GET", `v1/conversations/${encodeURIComponent(id)}`);
  }

  renameConversation(id: string, title: string): Promise<Conversation> {
    return this.json("PATCH", `v1/conversations/${encodeURIComponent(id)}`, { title });
  }

  deleteConversation(id: string): Promise<void> {
    return this.json("DELETE", `v1/conversations/${encodeURIComponent(id)}`);
  }

  streamState(id: string): Promise<StreamState> {
    return this.json("GET", `v1/streams/${encodeURIComponent(id)}`);
  }

  cancel(id: string): Promise<{ cancelled: boolean; state: string }> {
    return this.json("DELETE", `v1/streams/${encodeURIComponent(id)}`);
  }

  /** `POST /v1/streams` (or a team's `v1/team/stream`) answered as an event stream. */
  startStream(body: StreamRequest | TeamRequest, signal: AbortSignal, path = "v1/streams"): Promise<Response> {
    return this.send("POST", path, {
      body,
      headers: { Accept: "text/event-stream" },
      signal,
    });
  }

  /** `GET /v1/streams/{id}/events` after event `after` (-1: from the start). */
  followStream(id: string, after: number, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (after >= 0) headers["Last-Event-ID"] = String(after);
    return this.send("GET", `v1/streams/${encodeURIComponent(id)}/events`, { headers, signal });
  }
}

async function toApiError(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = "http_" + response.status;
  try {
    const body = (await response.json()) as { error?: { message?: string; code?: string } | string };
    if (typeof body.error === "string") message = body.error;
    else if (body.error?.message) {
      message = body.error.message;
      code = body.error.code ?? code;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, code);
}
