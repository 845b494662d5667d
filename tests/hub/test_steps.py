"""A throwaway step through every seam: planned by an extension, numbered, replayed on
resume, cancellable mid-step, seen by observers, rendered or dropped by each dialect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lmstream.backends.scripted import ScriptedBackend
from lmstream.events import CancelReason, Custom, Done, Event, TextDelta
from lmstream.http.app import default_extensions
from lmstream.http.state import AppState
from lmstream.hub import Plan, Run, RunningStream, StreamHub, each_event
from lmstream.request import ChatRequest, Message
from lmstream.router import Router
from lmstream.settings import Settings
from tests.support import app_client, scripted

ANSWER = "and liftoff"


class Countdown:
    """Emits ``countdown {left}`` events, then (``hang``) waits until cancelled."""

    def __init__(self, start: int, *, hang: bool = False) -> None:
        self.start = start
        self.hang = hang
        self.cleaned_up = False

    async def run(self, run: Run) -> None:
        try:
            for left in range(self.start, 0, -1):
                run.emit(Custom("countdown", {"left": left}))
                await asyncio.sleep(0)
            if self.hang:
                await asyncio.Event().wait()
        finally:
            self.cleaned_up = True


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, Event]] = []

    def on_event(self, stream: RunningStream, seq: int, event: Event) -> None:
        if isinstance(event, Custom):
            self.seen.append((stream.id, seq, event))


class CountdownExtension:
    """An extension as a third party would write one: a planner, an observer, a route."""

    name = "countdown"

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.planned = 0

    def routes(self) -> Sequence[BaseRoute]:
        async def planned(request: Request) -> Response:
            return JSONResponse({"planned": self.planned})

        return [Route("/v1/countdown", planned, methods=["GET"])]

    async def start(self, app: AppState) -> None:
        async def plan(request: ChatRequest, plan: Plan) -> Plan:
            last = request.messages[-1].content if request.messages else ""
            if last.startswith("countdown"):
                self.planned += 1
                plan.before.append(Countdown(3))
            return plan

        app.hub.planners.append(plan)
        app.hub.observers.append(self.recorder)

    async def aclose(self) -> None:
        return None


def settings() -> Settings:
    return Settings(models=[scripted("s", text=ANSWER)], store="none", fast_path=[])


async def test_a_step_runs_before_the_answer_and_its_events_are_numbered_and_replayed() -> None:
    extension = CountdownExtension()
    async with app_client(settings(), extensions=[*default_extensions(settings()), extension]) as client:
        started = (await client.post("/v1/streams", json={"prompt": "countdown please"})).json()
        whole = await client.get(started["events_url"])
        frames = parse_sse(whole.text)
        names = [name for _, name, _ in frames]
        assert names[:4] == ["start", "countdown", "countdown", "countdown"] and names[-1] == "done"
        assert [json.loads(data)["left"] for _, name, data in frames if name == "countdown"] == [3, 2, 1]
        assert [seq for seq, _, _ in frames] == list(range(len(frames)))
        text = "".join(json.loads(data)["text"] for _, name, data in frames if name == "token")
        assert text == ANSWER
        # a resume after the first countdown event replays exactly the rest
        resumed = await client.get(started["events_url"], headers={"Last-Event-ID": "1"})
        assert parse_sse(resumed.text) == frames[2:]
        # the observer saw the same numbered events, the extension's own route answers
        assert [(seq, e.data["left"]) for _, seq, e in extension.recorder.seen] == [(1, 3), (2, 2), (3, 1)]
        assert (await client.get("/v1/countdown")).json() == {"planned": 1}


async def test_client_dialects_drop_the_custom_event_and_keep_the_answer() -> None:
    extension = CountdownExtension()
    ask = [{"role": "user", "content": "countdown please"}]
    async with app_client(settings(), extensions=[extension]) as client:
        openai = await client.post("/v1/chat/completions", json={"model": "s", "stream": True, "messages": ask})
        anthropic = await client.post("/v1/messages", json={"model": "s", "stream": True, "max_tokens": 9, "messages": ask})
        ollama = await client.post("/api/chat", json={"model": "s", "messages": ask})
    assert extension.planned == 3 and len(extension.recorder.seen) == 9  # the step ran every time
    assert "left" not in openai.text + anthropic.text + ollama.text  # no countdown data anywhere
    openai_text = "".join(
        json.loads(data)["choices"][0]["delta"].get("content") or ""
        for _, _, data in parse_sse(openai.text) if data != "[DONE]"
    )
    anthropic_text = "".join(
        json.loads(data)["delta"].get("text", "")
        for _, name, data in parse_sse(anthropic.text) if name == "content_block_delta"
    )
    ollama_text = "".join(json.loads(line)["message"]["content"] for line in ollama.text.splitlines())
    assert openai_text == anthropic_text == ollama_text == ANSWER


async def test_a_step_is_cancelled_mid_step_and_the_stream_says_why() -> None:
    backend = ScriptedBackend(scripted("s", text=ANSWER))
    hub = StreamHub(Router({"s": backend}, "s"))
    step = Countdown(2, hang=True)

    async def plan(request: ChatRequest, plan: Plan) -> Plan:
        plan.before.append(step)
        return plan

    hub.planners.append(plan)
    generation = await hub.start(ChatRequest(messages=(Message("user", "x"),)))
    seen: list[Event] = []
    async with generation.attach(30):
        async for _, event in each_event(generation):
            seen.append(event)
            if len(seen) == 3:  # start + both countdown events: the step now hangs
                assert await generation.cancel(CancelReason.USER_STOP)
    assert step.cleaned_up  # the cancel reached the step itself
    done = seen[-1]
    assert isinstance(done, Done) and done.finish_reason == "cancelled"
    assert done.cancel_reason == CancelReason.USER_STOP
    assert not any(isinstance(e, TextDelta) for e in seen)  # the model round never ran
    assert backend.tokens_generated == 0


def parse_sse(text: str) -> list[tuple[int | None, str, str]]:
    """(id, event, data) of each event in an SSE body."""
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
        if "data" in fields:
            frames.append((int(fields["id"]) if "id" in fields else None, fields.get("event", "message"), fields["data"]))
    return frames


def test_parse_sse_reads_what_the_server_writes() -> None:
    assert parse_sse('id: 0\nevent: start\ndata: {}\n\n: ping\ndata: [DONE]\n\n') == [
        (0, "start", "{}"), (None, "message", "[DONE]"),
    ]
