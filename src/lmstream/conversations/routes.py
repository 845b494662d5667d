"""REST routes for conversations and profiles (a fixed contract: a web UI is built on it).

::

    GET    /v1/conversations?limit=20&cursor=<opaque>&q=<title substring>
           → {"data": [conversation], "next_cursor": str | null}, newest updated_at first
    POST   /v1/conversations {"title"?, "profile"?, "model"?}  → 201 conversation
    GET    /v1/conversations/{id}            → conversation + "messages": [message], in order
    PATCH  /v1/conversations/{id} {"title"}  → conversation
    DELETE /v1/conversations/{id}            → 204
    GET    /v1/conversations/{id}/export?format=json|markdown → attachment
    GET    /v1/profiles                      → {"data": [profile], "default": name}

    conversation = {"id", "title", "created_at", "updated_at", "model", "profile",
                    "message_count"}
    message      = {"id", "role", "content", "status", "model", "generation_id",
                    "usage": {"prompt_tokens", "completion_tokens", "total_tokens"} | null,
                    "ttft_ms", "tokens_per_second", "created_at", "error",
                    "tool_calls": [{"id", "name", "arguments"}], "tool_call_id", "name",
                    "sources": [source]}
                   (an answer that ran tools: the assistant's text with the calls that ended
                   its round, a "tool" message per result, then the rest; a team's answer:
                   one assistant message per speaker, "name" the speaker; an answer from
                   documents: "sources", what it was given, numbered as its [n] citations)
    source       = {"number", "title", "source", "snippet", "score", "document_id", "chunk"}

A conversation belongs to the key owner that made it: other keys get 404 for it and
never see it listed (``access.visible_to``; admin keys see all).
Timestamps are ISO 8601 UTC strings; an untitled conversation has the title ``""``.
Errors have the native shape ``{"error": {"message", "code", "param"}}``. Reads wait
for the writes already queued (a ``done`` event is followed by a stored answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from lmstream.access import owner_filter
from lmstream.conversations.service import Conversations
from lmstream.dialects import native
from lmstream.dialects.common import parse_body
from lmstream.errors import BadRequest, NotFound
from lmstream.http.auth import principal_of
from lmstream.http.endpoint import endpoint
from lmstream.http.state import app_state
from lmstream.http.streaming import JSON
from lmstream.profiles import Profiles, profile_json
from lmstream.store.base import Conversation, StoredMessage, new_id, now

__all__ = ["ConversationRoutes", "conversation_json", "message_json", "render_markdown"]

MAX_LIMIT = 100
MAX_QUERY = 200  # characters of `q` (SQLite refuses LIKE patterns past 50,000 with a 500)


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=200)
    profile: str | None = None
    model: str | None = None


class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=200)


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "model": c.model,
        "profile": c.profile,
        "message_count": c.message_count,
    }


def message_json(m: StoredMessage) -> dict[str, Any]:
    usage = None
    if m.prompt_tokens is not None or m.completion_tokens is not None:
        prompt, completion = m.prompt_tokens or 0, m.completion_tokens or 0
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return {
        "id": m.id,
        "role": m.role,
        "content": m.content,
        "status": m.status,
        "model": m.model,
        "generation_id": m.generation_id,
        "usage": usage,
        "ttft_ms": m.ttft_ms,
        "tokens_per_second": m.tokens_per_second,
        "created_at": m.created_at,
        "error": m.error,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls],
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        "sources": [native.source_json(source) for source in m.sources],
    }


def render_markdown(c: Conversation, messages: list[StoredMessage]) -> str:
    """A conversation as a Markdown document (the ``markdown`` export)."""
    lines = [f"# {c.title or 'Untitled conversation'}", ""]
    lines += [f"- id: `{c.id}`", f"- created: {c.created_at}", f"- updated: {c.updated_at}"]
    if c.model:
        lines.append(f"- model: {c.model}")
    if c.profile:
        lines.append(f"- profile: {c.profile}")
    for m in messages:
        heading = m.role.capitalize() + (f" ({m.name})" if m.name else "")
        if m.role == "tool" or m.tool_calls:
            body = [f"`{c.name}({c.arguments})`" for c in m.tool_calls]
            lines += ["", f"## {heading}", "", *([m.content.rstrip()] if m.content.strip() else []), *body]
        else:
            lines += ["", f"## {heading}", "", m.content.rstrip() or "*(no text)*"]
        if m.status != "complete":
            lines += ["", f"*({m.status}{': ' + m.error if m.error else ''})*"]
        if m.sources:
            lines += ["", "Sources:", ""]
            lines += [f"{s.number}. {s.title}" + (f" ({s.source})" if s.source else "") for s in m.sources]
    return "\n".join(lines) + "\n"


def _query(request: Request) -> str | None:
    query = request.query_params.get("q") or None
    if query is not None and len(query) > MAX_QUERY:
        raise BadRequest(f"`q` may have at most {MAX_QUERY} characters, got {len(query)}", param="q")
    return query


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"`limit` must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}", param="limit")
    return limit


class ConversationRoutes:
    """The routes, bound to the extension's service (None until the app has started)."""

    def __init__(self, service: Callable[[], Conversations | None]) -> None:
        self._get = service

    def routes(self) -> list[BaseRoute]:
        wrap = endpoint(native.error_body)
        return [
            Route("/v1/conversations", wrap(self.list_conversations), methods=["GET"]),
            Route("/v1/conversations", wrap(self.create_conversation), methods=["POST"]),
            Route("/v1/conversations/{conversation_id}", wrap(self.get_conversation), methods=["GET"]),
            Route("/v1/conversations/{conversation_id}", wrap(self.patch_conversation), methods=["PATCH"]),
            Route("/v1/conversations/{conversation_id}", wrap(self.delete_conversation), methods=["DELETE"]),
            Route("/v1/conversations/{conversation_id}/export", wrap(self.export_conversation), methods=["GET"]),
            Route("/v1/profiles", wrap(self.list_profiles), methods=["GET"]),
        ]

    def _service(self) -> Conversations:
        service = self._get()
        if service is None:
            raise NotFound("conversations are not enabled on this server")
        return service

    async def list_conversations(self, request: Request) -> Response:
        store = await self._service().synced_store()
        page = await store.list_conversations(
            limit=_limit(request),
            cursor=request.query_params.get("cursor") or None,
            query=_query(request),
            owner=owner_filter(principal_of(request)),
        )
        return JSON({"data": [conversation_json(c) for c in page.data], "next_cursor": page.next_cursor})


    async def create_conversation(self, request: Request) -> Response:
        service = self._service()
        body = parse_body(NewConversation, await request.body() or b"{}")
        profile = service.profiles.get(body.profile)
        model = None
        if body.model is not None:
            model = app_state(request).router.resolve(body.model)[1]
        stamp = now()
        title = " ".join((body.title or "").split())
        conversation = Conversation(
            new_id("conv"), title, stamp, stamp, model=model, profile=profile.name, owner=principal_of(request).owner
        )
        store = await service.synced_store()
        await store.create_conversation(conversation)
        return JSON(conversation_json(conversation), status_code=201)


    async def get_conversation(self, request: Request) -> Response:
        service = self._service()
        conversation = await service.conversation(request.path_params["conversation_id"], principal_of(request))
        messages = await service.store.list_messages(conversation.id) if service.store else []
        return JSON({**conversation_json(conversation), "messages": [message_json(m) for m in messages]})


    async def patch_conversation(self, request: Request) -> Response:
        service = self._service()
        body = parse_body(ConversationPatch, await request.body())
        conversation = await service.conversation(request.path_params["conversation_id"], principal_of(request))
        store = await service.synced_store()
        title = " ".join(body.title.split())
        updated = await store.update_conversation(conversation.id, title=title)
        if updated is None:
            raise NotFound(f"no conversation {conversation.id!r}")
        return JSON(conversation_json(updated))


    async def delete_conversation(self, request: Request) -> Response:
        service = self._service()
        conversation = await service.conversation(request.path_params["conversation_id"], principal_of(request))
        store = await service.synced_store()
        if not await store.delete_conversation(conversation.id):
            raise NotFound(f"no conversation {conversation.id!r}")
        return Response(status_code=204)


    async def export_conversation(self, request: Request) -> Response:
        service = self._service()
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "markdown"):
            raise BadRequest(f"`format` must be json or markdown, got {fmt!r}", param="format")
        conversation = await service.conversation(request.path_params["conversation_id"], principal_of(request))
        messages = await service.store.list_messages(conversation.id) if service.store else []
        if fmt == "markdown":
            disposition = f'attachment; filename="{conversation.id}.md"'
            return PlainTextResponse(
                render_markdown(conversation, messages),
                media_type="text/markdown",
                headers={"Content-Disposition": disposition},
            )
        document = {
            "format": "lmstream.conversation",
            "version": 1,
            "exported_at": now(),
            **conversation_json(conversation),
            "messages": [message_json(m) for m in messages],
        }
        disposition = f'attachment; filename="{conversation.id}.json"'
        return JSON(document, headers={"Content-Disposition": disposition})


    async def list_profiles(self, request: Request) -> Response:
        service = self._get()
        profiles = service.profiles if service is not None else Profiles.from_settings(app_state(request).settings)
        return JSON({"data": [profile_json(p) for p in profiles.all()], "default": profiles.default})
