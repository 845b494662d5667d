"""The upstream backends' HTTP seam: what ``backends/upstream.py`` needs from a client.

The upstream backends send one POST and read its streamed body as raw bytes; framing
(SSE, NDJSON) and payloads are theirs (``backends/framing.py``, the kinds' decoders).
So the seam is small, in the shape of httpx's transport::

    client.post(url, content, headers, connect_timeout) -> UpstreamResponse
        ConnectFailed: nothing was answered (cannot connect, connection closed or
                       reset before the status line): always safe to retry
    response.status, response.header(name)
    response.receive(deadline) -> bytes   the next body bytes as they arrive; b"" at the end
        ReadFailed:    the connection broke or the body is malformed
        TimeoutError:  nothing came by ``deadline`` (the loop's clock), when given
    response.read() -> bytes        the whole (error) body
    response.drain(seconds)         read up to the body's end, bounded, so the
                                    connection can go back to the pool
    response.aclose()               back to the pool when the body ended, else dropped
    client.aclose()

lmstream's own client (``lmstream.httpclient``) implements it; :class:`HttpxClient`
adapts an ``httpx.AsyncClient`` to it (what ``BackendContext.http`` may also hold:
tests mock upstreams at httpx's transport, and the benchmarks compare the clients).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import httpx

from lmstream.backends.framing import NdjsonDecoder, SSEDecoder

__all__ = [
    "ConnectFailed",
    "HttpxClient",
    "ReadFailed",
    "TransportError",
    "UpstreamClient",
    "UpstreamResponse",
    "as_client",
    "ndjson_lines",
    "sse_events",
]


class TransportError(Exception):
    """The upstream's connection failed (the kinds map it to ``UpstreamUnavailable``)."""


class ConnectFailed(TransportError):
    """No response at all: the request can be sent again."""


class ReadFailed(TransportError):
    """The response broke after its status line."""


class UpstreamResponse(Protocol):
    @property
    def status(self) -> int: ...

    def header(self, name: str) -> str | None:
        """A response header (case-insensitive), or None."""
        ...

    async def receive(self, deadline: float | None = None) -> bytes:
        """The next piece of the body as soon as it arrives; ``b""`` once it ended;
        ``TimeoutError`` if nothing arrived by ``deadline`` (``loop.time()`` clock)."""
        ...

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        ...

    async def drain(self, seconds: float) -> None:
        """Read what is left of the body for at most ``seconds``, discarding it."""
        ...

    async def aclose(self) -> None:
        """Release the connection: reused when the body was read to its end, else closed."""
        ...


@runtime_checkable
class UpstreamClient(Protocol):
    async def post(
        self, url: str, content: bytes, headers: Mapping[str, str], *, connect_timeout: float, begun: Any = None
    ) -> UpstreamResponse:
        """Send the request; return once the response's status line and headers are in.
        ``begun``: this request as the client's own ``begin`` already wrote it (a client
        with a ``begin``, as lmstream's has; None for any other)."""
        ...

    async def aclose(self) -> None: ...


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._body: AsyncIterator[bytes] = response.aiter_bytes()

    @property
    def status(self) -> int:
        return self._response.status_code

    def header(self, name: str) -> str | None:
        value: str | None = self._response.headers.get(name)
        return value

    async def receive(self, deadline: float | None = None) -> bytes:
        try:
            async with asyncio.timeout_at(deadline):
                return await anext(self._body, b"")
        except httpx.TransportError as exc:
            raise ReadFailed(str(exc) or type(exc).__name__) from exc

    async def read(self) -> bytes:
        try:
            return b"".join([piece async for piece in self._body])
        except httpx.TransportError as exc:
            raise ReadFailed(str(exc) or type(exc).__name__) from exc

    async def drain(self, seconds: float) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(seconds):
                async for _ in self._body:
                    pass

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxClient:
    """An ``httpx.AsyncClient`` behind the seam (its own timeouts, pool and proxies)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self, url: str, content: bytes, headers: Mapping[str, str], *, connect_timeout: float, begun: Any = None
    ) -> UpstreamResponse:
        timeout = httpx.Timeout(None, connect=connect_timeout, pool=connect_timeout)
        request = self.client.build_request("POST", url, content=content, headers=dict(headers), timeout=timeout)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self.client.aclose()


def as_client(http: UpstreamClient | httpx.AsyncClient) -> UpstreamClient:
    """The seam over what ``BackendContext.http`` holds."""
    return HttpxClient(http) if isinstance(http, httpx.AsyncClient) else http


async def sse_events(response: httpx.Response) -> AsyncGenerator[tuple[str, str], None]:
    """(event name, data) of each SSE event of an httpx response."""
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for name, data in decoder.feed(chunk):
            yield name, data.decode("utf-8", "replace")


async def ndjson_lines(response: httpx.Response) -> AsyncGenerator[str, None]:
    """Each non-empty line of an httpx response's NDJSON body."""
    decoder = NdjsonDecoder()
    async for chunk in response.aiter_bytes():
        for line in decoder.feed(chunk):
            yield line
    for line in decoder.flush():
        yield line
