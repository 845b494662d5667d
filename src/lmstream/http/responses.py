"""JSON Schemas of the API's response bodies, for ``/openapi.json`` (``openapi.py``).

Each lists the fields a client may rely on (``required``) with their types; further
fields are allowed, as the APIs lmstream speaks add fields over time.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANTHROPIC_ERROR",
    "ANTHROPIC_MESSAGE",
    "CHAT_COMPLETION",
    "COLLECTION",
    "COLLECTION_LIST",
    "CONVERSATION",
    "CONVERSATION_EXPORT",
    "CONVERSATION_PAGE",
    "CONVERSATION_WITH_MESSAGES",
    "COUNT_TOKENS",
    "DOCUMENT",
    "DOCUMENT_ADDED",
    "DOCUMENT_PAGE",
    "EMBEDDINGS",
    "HEALTH",
    "KEY",
    "KEY_CREATED",
    "KEY_LIST",
    "MODEL",
    "MODEL_LIST",
    "NATIVE_ERROR",
    "OLLAMA_CHUNK",
    "OLLAMA_EMBED",
    "OLLAMA_EMBEDDING",
    "OLLAMA_ERROR",
    "OLLAMA_MODELS",
    "OLLAMA_SHOW",
    "OLLAMA_VERSION",
    "OPENAI_ERROR",
    "PROFILES",
    "SEARCH_HITS",
    "SSE_EVENT",
    "STREAM_CANCELLED",
    "STREAM_CREATED",
    "STREAM_STATE",
    "TOKEN",
    "TOOL_LIST",
    "TOOL_RESULT",
]

Schema = dict[str, Any]
STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


def maybe(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


# One event of a text/event-stream body (comments, the heartbeats, are no events); `data`
# is JSON in every dialect but OpenAI's last one, `[DONE]`.
SSE_EVENT = obj({"data": STR}, {"event": STR, "id": STR, "retry": INT})
NATIVE_ERROR = obj({"error": obj({"message": STR, "code": STR}, {"param": maybe(STR)})})
OPENAI_ERROR = obj({"error": obj({"message": STR, "type": STR, "code": maybe(STR)}, {"param": maybe(STR)})})
ANTHROPIC_ERROR = obj({"type": {"const": "error"}, "error": obj({"type": STR, "message": STR})})
OLLAMA_ERROR = obj({"error": STR})

USAGE = obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT})
HEALTH = obj(
    {
        "status": {"enum": ["ok", "degraded"]},
        "instance": STR,  # which instance answered (several share Redis: lmstream.cluster)
        "auth_required": BOOL,
        "active_streams": INT,
        "queue_length": INT,
        "models": array(obj({"name": STR, "backend": STR})),
    },
    {"components": {"type": "object"}, "uptime_s": NUM, "model_loaded": BOOL},
)
STREAM_CREATED = obj({"id": STR, "object": STR, "model": STR, "state": STR, "url": STR, "events_url": STR})
STREAM_STATE = obj(
    {"id": STR, "state": STR, "model": STR, "text": STR, "finish_reason": maybe(STR), "last_event_id": INT,
     "instance": STR},  # the instance that runs it
    {"usage": maybe(USAGE), "tool_calls": array({"type": "object"}), "sources": array({"type": "object"})},
)
STREAM_CANCELLED = obj({"id": STR, "cancelled": BOOL, "state": STR})
CHAT_COMPLETION = obj(
    {
        "id": STR,
        "object": {"const": "chat.completion"},
        "model": STR,
        "choices": array(obj({"index": INT, "message": obj({"role": STR}), "finish_reason": STR})),
        "usage": USAGE,
    }
)
MODEL = obj({"id": STR, "object": {"const": "model"}, "owned_by": STR})
MODEL_LIST = obj({"object": {"const": "list"}, "data": array(MODEL)})
ANTHROPIC_MESSAGE = obj(
    {
        "id": STR,
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": STR,
        "content": array(obj({"type": STR})),
        "stop_reason": STR,
        "usage": obj({"input_tokens": INT, "output_tokens": INT}),
    }
)
COUNT_TOKENS = obj({"input_tokens": INT})
OLLAMA_CHUNK = obj({"model": STR, "created_at": STR, "done": BOOL})
OLLAMA_MODELS = obj({"models": array(obj({"name": STR, "model": STR, "details": {"type": "object"}}))})
OLLAMA_SHOW = obj({"details": {"type": "object"}, "model_info": {"type": "object"}, "capabilities": array(STR)})
OLLAMA_VERSION = obj({"version": STR})
CONVERSATION = obj(
    {
        "id": STR,
        "title": STR,
        "created_at": STR,
        "updated_at": STR,
        "model": maybe(STR),
        "profile": maybe(STR),
        "message_count": INT,
    }
)
MESSAGE = obj(
    {"id": STR, "role": STR, "content": STR, "status": STR, "created_at": STR},
    {"usage": maybe(USAGE), "error": maybe(STR), "model": maybe(STR), "sources": maybe(array({"type": "object"}))},
)
CONVERSATION_PAGE = obj({"data": array(CONVERSATION), "next_cursor": maybe(STR)})
CONVERSATION_WITH_MESSAGES = {"allOf": [CONVERSATION, obj({"messages": array(MESSAGE)})]}
CONVERSATION_EXPORT = {"allOf": [CONVERSATION, obj({"format": STR, "version": INT, "messages": array(MESSAGE)})]}
PROFILES = obj({"data": array(obj({"name": STR})), "default": STR})
KEY = obj(
    {
        "id": STR,
        "prefix": STR,
        "name": STR,
        "owner": STR,
        "admin": BOOL,
        "models": maybe(array(STR)),
        "limits": obj(
            {"requests_per_minute": maybe(INT), "concurrent_streams": maybe(INT), "tokens_per_minute": maybe(INT)}
        ),
        "created_at": STR,
        "last_used_at": maybe(STR),
        "expires_at": maybe(STR),
        "revoked_at": maybe(STR),
        "active": BOOL,
    }
)
KEY_CREATED = {"allOf": [KEY, obj({"key": STR})]}
KEY_LIST = obj({"data": array(KEY)})
TOOL_LIST = obj({"object": {"const": "list"}, "data": array(obj({"name": STR, "description": STR, "input_schema": {"type": "object"}}))})
TOOL_RESULT = obj({"id": STR, "tool": STR, "execution_time": {"type": "number"}}, {"result": {}})
TOKEN = obj({"token": STR, "scope": {"const": "start"}, "expires_at": INT})
# Documents (lmstream.rag.routes, lmstream.rag.embedding_routes).
COLLECTION = obj(
    {
        "id": STR,
        "name": STR,
        "description": STR,
        "owner": maybe(STR),
        "document_count": INT,
        "chunk_count": INT,
        "created_at": STR,
        "updated_at": STR,
    }
)
COLLECTION_LIST = obj({"data": array(COLLECTION)})
DOCUMENT = obj(
    {
        "id": STR,
        "title": STR,
        "source": maybe(STR),
        "media_type": STR,
        "size": INT,
        "chunk_count": INT,
        "content_hash": STR,
        "created_at": STR,
        "updated_at": STR,
    }
)
DOCUMENT_PAGE = obj({"data": array(DOCUMENT), "next_cursor": maybe(STR)})
DOCUMENT_ADDED = obj({"status": {"enum": ["created", "updated", "unchanged", "duplicate"]}, "document": DOCUMENT})
HIT = obj(
    {"document_id": STR, "title": STR, "source": maybe(STR), "chunk": INT, "score": NUM, "text": STR},
    {"heading": maybe(STR)},
)
SEARCH_HITS = obj({"data": array(HIT), "mode": {"enum": ["lexical", "dense", "hybrid"]}})
EMBEDDINGS = obj(
    {
        "object": {"const": "list"},
        "data": array(obj({"object": {"const": "embedding"}, "index": INT, "embedding": {"anyOf": [array(NUM), STR]}})),
        "model": STR,
        "usage": obj({"prompt_tokens": INT, "total_tokens": INT}),
    }
)
OLLAMA_EMBED = obj({"model": STR, "embeddings": array(array(NUM))}, {"total_duration": INT, "prompt_eval_count": INT})
OLLAMA_EMBEDDING = obj({"embedding": array(NUM)})
