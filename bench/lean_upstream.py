"""A measured prototype, not part of lmstream: the ``openai`` backend's upstream HTTP client
on a raw asyncio protocol instead of httpx.

BENCHMARKS.md traces half of lmstream's relay CPU, and most of the time to first token it
adds, to the httpx stack that ``backends/upstream.py`` reads each upstream token through
(httpx → httpcore → h11 → anyio → httpx-sse: a chain of async generators per token).
This backend keeps everything else (the request body, ``ChunkDecoder``, the stop matcher,
the hub, the dialects) and replaces only that: one ``asyncio.Protocol`` per request
parses the response head, the chunked coding and the SSE framing in ``data_received``
and hands each event's data to the generation through a queue. The overhead scenario
runs it as the ``lmstream-lean`` target, side by side with the real one.

What it leaves out, and a production version would need: retries, the timeouts and error
mapping of ``upstream.py``, TLS, proxies, keep-alive pooling, and back-pressure (reading
is never paused when the client is slower than the upstream).

Run as ``python -m bench.lean_upstream serve --config ...``: it registers the backend kind
``openai-lean`` through lmstream's public registry, then runs the ordinary CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.wire import ChunkedDecoder, ResponseHead, SSEParser
from lmstream.backends.base import EventStream
from lmstream.backends.openai import ChunkDecoder, OpenAIBackend
from lmstream.errors import UpstreamError
from lmstream.events import Done, Event, TextDelta
from lmstream.request import ChatRequest
from lmstream.text import StopMatcher

__all__ = ["LeanOpenAIBackend", "main"]


class _Response(asyncio.Protocol):
    """One upstream request's connection: head, chunked body, SSE data → ``items``
    (through the load generator's own parsers in ``bench/wire.py``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status: asyncio.Future[int] = loop.create_future()
        self.items: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._head = ResponseHead()
        self._body = ChunkedDecoder()
        self._sse = SSEParser()

    def data_received(self, data: bytes) -> None:
        if not self.status.done():
            rest = self._head.feed(data)
            if rest is None:
                return
            self.status.set_result(self._head.status)
            data = rest
        for _, payload in self._sse.feed(self._body.feed(data)):
            self.items.put_nowait(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_exception(UpstreamError(f"the openai upstream closed the connection: {exc!r}"))
        self.items.put_nowait(None)


class LeanOpenAIBackend(OpenAIBackend):
    kind = "openai"

    async def open(self, request: ChatRequest) -> EventStream:
        body, headers = self.build(request)
        content = orjson.dumps(body)
        url = urlsplit(self.url)
        loop = asyncio.get_running_loop()
        transport, response = await loop.create_connection(lambda: _Response(loop), url.hostname, url.port or 80)
        head = f"POST {url.path} HTTP/1.1\r\nhost: {url.netloc}\r\ncontent-type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in {**self.config.headers, **headers}.items())
        transport.write(f"{head}content-length: {len(content)}\r\n\r\n".encode() + content)
        try:
            status = await asyncio.wait_for(response.status, self.config.first_token_timeout)
        except BaseException:
            transport.close()
            raise
        if status >= 400:
            transport.close()
            raise UpstreamError(f"the openai upstream answered {status}")
        return self._events(request, transport, response)

    async def _events(self, request: ChatRequest, transport: Any, response: _Response) -> AsyncGenerator[Event, None]:
        self.active += 1
        decoder = ChunkDecoder()
        matcher = StopMatcher(request.stop)
        try:
            while True:
                data = await response.items.get()
                if data is None:
                    raise UpstreamError("the openai upstream ended its stream before it was done")
                for event in decoder.feed(data.decode()):
                    if isinstance(event, TextDelta):
                        self.tokens_generated += 1
                        emit, _ = matcher.feed(event.text)
                        if emit:
                            yield TextDelta(emit)
                        continue
                    if isinstance(event, Done):
                        tail = matcher.flush()
                        if tail:
                            yield TextDelta(tail)
                        yield event
                        return
                    yield event
        finally:
            self.active -= 1
            transport.close()  # client gone or done: the upstream sees its connection close


def main() -> None:
    from lmstream.backends.registry import register_backend
    from lmstream.cli import main as cli

    register_backend("openai-lean", LeanOpenAIBackend)
    cli()


if __name__ == "__main__":
    main()
