"""The floor of any relay on this machine: a process that forwards bytes, nothing else.

``python -m bench.byte_relay --port P --upstream-port U`` accepts connections on ``P`` and
forwards each to its own connection to ``127.0.0.1:U`` (kept for the client connection's
life, as a proxy's pool keeps its upstream connections), both ways, unread: no HTTP
parsing, no JSON, no task per request, two ``data_received`` callbacks under uvloop and
the kernel's socket writes. What it adds to the fake upstream's time to first token is
what one more process hop costs here (two more wakeups, a context switch each on two
cores shared with the load generator and the upstream): the least any relay —
lmstream, LiteLLM, nginx — can add on this box. ``bench overhead`` runs it as the
``relay-floor`` target, so lmstream's own share is its figure minus this one.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

from bench.procs import use_uvloop

__all__ = ["main"]


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()


class _Client(asyncio.Protocol):
    transport: asyncio.Transport

    def __init__(self, port: int) -> None:
        self.port = port
        self.upstream: _Upstream | None = None
        self.early: list[bytes] = []  # what arrived before the upstream connection was up

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(lambda: _Upstream(self), "127.0.0.1", self.port)
        except OSError:
            self.transport.close()
            return
        assert upstream.transport is not None
        for data in self.early:
            upstream.transport.write(data)
        self.early.clear()
        self.upstream = upstream

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def _serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    use_uvloop()
    asyncio.run(_serve(args.port, args.upstream_port))


if __name__ == "__main__":
    main()
