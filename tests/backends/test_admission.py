"""Issue 14, finding 7: background title requests yield to people on the embedded model.

On main (019ff31) a title waiting for the model took a person's place: with one place
in the queue, the person got 503 (17 concurrent answers made 16 titles and the users
got 503s), and a title that joined first ran first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("llama_cpp")

from lmstream.backends.admission import WaitLine
from lmstream.backends.base import BackendContext, EventStream
from lmstream.backends.llama_cpp import LlamaCppBackend
from lmstream.errors import Overloaded
from lmstream.events import Event, Queued
from lmstream.request import ChatRequest, RequestContext
from lmstream.settings import ModelConfig, Settings


def test_people_come_before_background_jobs_in_the_line() -> None:
    line: WaitLine[str] = WaitLine()
    line.append("title-1", interactive=False)
    line.append("ada", interactive=True)
    line.append("title-2", interactive=False)
    line.append("bob", interactive=True)
    assert (line.users, line.background) == (2, 2)
    assert [line.index(j) for j in ("ada", "bob", "title-1", "title-2")] == [0, 1, 2, 3]
    assert [line.popleft() for _ in range(4)] == ["ada", "bob", "title-1", "title-2"]


@pytest.fixture(scope="module")
def backend() -> Iterator[LlamaCppBackend]:
    settings = Settings(n_ctx=2048, n_batch=32, queue_size=1)
    http = httpx.AsyncClient()
    model = LlamaCppBackend(ModelConfig(name="gemma3-270m"), BackendContext(settings=settings, http=http))
    asyncio.run(model.start())
    yield model
    asyncio.run(model.aclose())
    asyncio.run(http.aclose())


def ask(prompt: str, purpose: str = "chat", tokens: int = 3) -> ChatRequest:
    return ChatRequest(
        messages=(), raw_prompt=prompt, max_tokens=tokens, temperature=0,
        context=RequestContext(purpose=purpose),  # type: ignore[arg-type]
    )


@pytest.mark.embedded
async def test_a_waiting_title_never_takes_a_persons_place(backend: LlamaCppBackend) -> None:
    holder = await backend.open(ask("1, 2, 3,", tokens=6))
    title = await backend.open(ask("Title:", purpose="title"))
    with pytest.raises(Overloaded):  # the background lane is full: a second title gives up
        await backend.open(ask("Title:", purpose="title"))
    person = await backend.open(ask("a, b, c,"))  # the one place people have is still free
    with pytest.raises(Overloaded):  # and now it is taken
        await backend.open(ask("x,"))

    order: list[str] = []

    async def consume(name: str, stream: EventStream) -> list[Event]:
        events = []
        async for event in stream:
            events.append(event)
            if event.kind == "done":
                order.append(name)
        return events

    async with asyncio.timeout(120):
        _, title_events, person_events = await asyncio.gather(
            consume("holder", holder), consume("title", title), consume("person", person)
        )
    assert order == ["holder", "person", "title"]
    assert person_events[0] == Queued(position=1)
    assert Queued(position=2) in title_events  # it moved back when the person came
    assert backend.stats().queue == 0 and backend.stats().active == 0
