"""The upstream HTTP clients compared on the ``overhead`` scenario, behind lmstream's seam.

lmstream's upstream backends talk to their HTTP client through ``backends/transport.py``
(post, receive bytes, drain, release). The app's client is lmstream's own
(``lmstream.httpclient``); this module puts the maintained alternatives behind the same
seam so that everything else (request building, framing, decoders, stop matcher,
timeouts, retries, hub, dialects) is the same code in every row:

* ``httpx``    ``httpx.AsyncClient`` (what lmstream used before), through the product's
  own ``HttpxClient`` adapter;
* ``aiohttp``  ``aiohttp.ClientSession`` (``content.readany()`` per read);
* ``httpcore`` ``httpcore.AsyncConnectionPool`` directly (h11 + anyio, no httpx layer).

Run as ``python -m bench.upstream_clients serve --config ...`` with ``LMSTREAM_BENCH_CLIENT``
naming the client: it registers the ``openai`` backend kind over that client (through
lmstream's public registry, as a plugin would), then runs the ordinary CLI. Bench only:
none of this is part of lmstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpcore
import httpx

from lmstream.backends.base import BackendContext
from lmstream.backends.openai import OpenAIBackend
from lmstream.backends.transport import (
    ConnectFailed,
    HttpxClient,
    ReadFailed,
    UpstreamClient,
    UpstreamResponse,
)
from lmstream.settings import ModelConfig

__all__ = ["AiohttpClient", "HttpcoreClient", "main", "make_client"]


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def receive(self, deadline: float | None = None) -> bytes:
        try:
            async with asyncio.timeout_at(deadline):
                return await self._response.content.readany()
        except aiohttp.ClientError as exc:
            raise ReadFailed(str(exc)) from exc

    async def read(self) -> bytes:
        return await self._response.read()

    async def drain(self, seconds: float) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(seconds):
                while await self._response.content.readany():
                    pass

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpClient:
    def __init__(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=True, auto_decompress=False)

    async def post(self, url: str, content: bytes, headers: Mapping[str, str], *, connect_timeout: float) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout)
        try:
            response = await self._session.post(url, data=content, headers=dict(headers), timeout=timeout)
        except aiohttp.ClientError as exc:
            raise ConnectFailed(str(exc)) from exc
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        await self._session.close()


class _HttpcoreResponse:
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response
        stream: Any = response.stream
        self._body: AsyncIterator[bytes] = stream.__aiter__()

    @property
    def status(self) -> int:
        return self._response.status

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self._response.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    async def receive(self, deadline: float | None = None) -> bytes:
        try:
            async with asyncio.timeout_at(deadline):
                return await anext(self._body, b"")
        except httpcore.ReadError as exc:
            raise ReadFailed(str(exc)) from exc

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._body])

    async def drain(self, seconds: float) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(seconds):
                async for _ in self._body:
                    pass

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpcoreClient:
    def __init__(self) -> None:
        self._pool = httpcore.AsyncConnectionPool(max_connections=None, max_keepalive_connections=256, keepalive_expiry=4.0)

    async def post(self, url: str, content: bytes, headers: Mapping[str, str], *, connect_timeout: float) -> UpstreamResponse:
        host = url.split("/", 3)[2].encode()
        request = httpcore.Request(
            "POST", url, content=content,
            headers=[(b"host", host), (b"content-length", b"%d" % len(content)), *((k.encode(), v.encode()) for k, v in headers.items())],
            extensions={"timeout": {"connect": connect_timeout, "pool": connect_timeout}},
        )  # fmt: skip
        try:
            response = await self._pool.handle_async_request(request)
        except httpcore.ConnectError as exc:
            raise ConnectFailed(str(exc)) from exc
        return _HttpcoreResponse(response)

    async def aclose(self) -> None:
        await self._pool.aclose()


def make_client(name: str) -> UpstreamClient:
    if name == "httpx":
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        return HttpxClient(httpx.AsyncClient(limits=limits))
    if name == "aiohttp":
        return AiohttpClient()
    if name == "httpcore":
        return HttpcoreClient()
    raise ValueError(f"unknown client {name!r}")


class BenchOpenAIBackend(OpenAIBackend):
    """The product's ``openai`` backend, over the client named by LMSTREAM_BENCH_CLIENT."""

    def __init__(self, config: ModelConfig, context: BackendContext) -> None:
        super().__init__(config, context)
        self._name = os.environ.get("LMSTREAM_BENCH_CLIENT", "httpx")

    async def start(self) -> None:
        self.http = make_client(self._name)  # created in the running loop (aiohttp wants it)

    async def aclose(self) -> None:
        await self.http.aclose()


def main() -> None:
    from lmstream.backends.registry import register_backend
    from lmstream.cli import main as cli

    register_backend("openai", BenchOpenAIBackend)
    cli()


if __name__ == "__main__":
    main()
