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
from collections.abc import Callable
from typing import cast

from bench.procs import use_uvloop

__all__ = ["KeptUpstream", "main", "serve_relay"]


class KeptUpstream(asyncio.Protocol):
    """A client connection with an upstream connection of its own, opened when the client
    connects and kept for the client connection's life (what the client sends before it
    is up waits); closing either side closes the other. Subclasses say what protocol reads
    the upstream (``upstream_protocol``) and send through ``forward``."""

    transport: asyncio.Transport

    def __init__(self, port: int) -> None:
        self.port = port
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []  # what was to go upstream before the connection was up

    def upstream_protocol(self) -> asyncio.Protocol:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(self.upstream_protocol, "127.0.0.1", self.port)
        except OSError:
            self.transport.close()
            return
        for data in self.early:
            upstream.write(data)
        self.early.clear()
        self.upstream = upstream

    def forward(self, data: bytes) -> None:
        """``data`` to the upstream, now or once the connection is up."""
        if self.upstream is not None:
            self.upstream.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()


class _Client(KeptUpstream):
    def upstream_protocol(self) -> asyncio.Protocol:
        return _Upstream(self)

    def data_received(self, data: bytes) -> None:
        self.forward(data)


async def _serve(client: Callable[[int], asyncio.Protocol], port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: client(upstream_port), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def serve_relay(client: Callable[[int], asyncio.Protocol], description: str) -> None:
    """The command line of a relay: ``--port P --upstream-port U``, one ``client(U)`` per
    connection accepted on ``P``, under uvloop."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    use_uvloop()
    asyncio.run(_serve(client, args.port, args.upstream_port))


def main() -> None:
    serve_relay(_Client, __doc__.split("\n")[0])


if __name__ == "__main__":
    main()
