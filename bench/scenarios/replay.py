"""A chat front end's load, replayed: Open WebUI 0.12's requests for two chat turns.

``/work/shared/clients/openwebui-0.12-requests.jsonl`` (copied to
``bench/data/openwebui-0.12-requests.jsonl``) holds what Open WebUI sent per turn over
its Ollama (``/api/chat``) and OpenAI (``/v1/chat/completions``) connections: a
non-streaming title request (``max_tokens``/``num_predict`` 1000), the user's streaming
message, then non-streaming follow-up suggestions and tags (no token limit). The replay
keeps that shape with the timing the issue names: the title request, 0.1 s later the
user's message; when the user's answer is in (read up to ``USER_TOKENS`` tokens, then
closed), the follow-up and tag requests, and 0.5 s later the user's next message. What
counts is each user message's time to first token while the background requests run;
once the turn is over, the background requests are cancelled (closed), not waited for.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

__all__ = ["REQUESTS", "Turn", "load_turns", "replay"]

REQUESTS = Path(__file__).resolve().parent.parent / "data" / "openwebui-0.12-requests.jsonl"
USER_TOKENS = 32
TITLE_LEAD_S = 0.1
READING_S = 0.5


@dataclass
class Turn:
    """One user message and the background requests around it."""

    user: dict[str, Any]
    before: list[dict[str, Any]] = field(default_factory=list)  # the title request
    after: list[dict[str, Any]] = field(default_factory=list)  # follow-ups, tags


def load_turns(path: str) -> list[Turn]:
    """The turns of one connection (``/api/chat`` or ``/v1/chat/completions``)."""
    turns: list[Turn] = []
    pending: list[dict[str, Any]] = []
    for line in REQUESTS.read_text().splitlines():
        entry = orjson.loads(line)
        if entry["path"] != path:
            continue
        body = {k: v for k, v in entry["body"].items() if not k.startswith("_")}
        if body.get("stream", path == "/api/chat"):  # Ollama streams unless told not to
            turns.append(Turn(user=body, before=pending))
            pending = []
        elif turns:
            turns[-1].after.append(body)
        else:
            pending.append(body)
    return turns


def _first_text(path: str, line: str) -> str:
    """The answer text a stream line carries ("" for none)."""
    if path == "/api/chat":
        if not line.strip():
            return ""
        return str(orjson.loads(line).get("message", {}).get("content") or "")
    if not line.startswith("data: {"):
        return ""
    choices = orjson.loads(line[6:]).get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


async def _user_ttft(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> float | None:
    started = time.monotonic()
    first: float | None = None
    tokens = 0
    async with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if _first_text(path, line):
                first = first or time.monotonic() - started
                tokens += 1
                if tokens >= USER_TOKENS:
                    break
    return first


async def _background(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    response = await client.post(path, json=body)
    response.raise_for_status()


async def replay(base_url: str, path: str, turns: list[Turn]) -> list[float | None]:
    """Every user message's time to first token, in seconds (None: no token came)."""
    ttfts: list[float | None] = []
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        background: list[asyncio.Task[None]] = []
        try:
            for turn in turns:
                if turn.before:
                    background += [asyncio.create_task(_background(client, path, b)) for b in turn.before]
                    await asyncio.sleep(TITLE_LEAD_S)
                ttfts.append(await _user_ttft(client, path, turn.user))
                background += [asyncio.create_task(_background(client, path, b)) for b in turn.after]
                await asyncio.sleep(READING_S)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
    return ttfts
