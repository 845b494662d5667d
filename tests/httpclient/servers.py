"""Real loopback servers for the HTTP client's tests: an upstream and a forward proxy.

:class:`Upstream` is a raw asyncio HTTP/1.1 server (optionally TLS) that reads each
request on a connection and answers it with what its ``respond`` callable returns,
written in the pieces given (each piece its own write, with ``pause`` seconds between
them when set). A ``None`` piece means: from here on say nothing and keep the
connection open until the client goes; an empty piece: close the connection there; no
pieces at all: close it without an answer. It counts the TCP connections it accepted and records every request.

:class:`Proxy` is a forward proxy: absolute-form requests for plain HTTP, ``CONNECT``
tunnels for HTTPS. It records the request lines and ``Proxy-Authorization`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Proxy", "Request", "Upstream", "chunked", "sse_response"]


@dataclass
class Request:
    line: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection (1, 2, ...) carried it


Respond = Callable[[Request], list[bytes | None]]


def chunked(*pieces: bytes) -> list[bytes]:
    """Each piece as one chunk, then the last chunk."""
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]


def sse_response(*events: bytes, headers: str = "") -> list[bytes | None]:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n{headers}\r\n".encode()
    return [head, *chunked(*events)]


@dataclass
class Upstream:
    respond: Respond
    tls: ssl.SSLContext | None = None
    pause: float = 0.0
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a client connection ended
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, path: str = "/v1/chat/completions", host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.add(writer)
        try:
            while True:
                request = await read_request(reader, number)
                if request is None:
                    return
                self.requests.append(request)
                pieces = self.respond(request)
                if not pieces:
                    return
                for piece in pieces:
                    if piece is None:
                        await reader.read()  # until the client goes
                        return
                    if not piece:
                        return
                    writer.write(piece)
                    await writer.drain()
                    if self.pause:
                        await asyncio.sleep(self.pause)  # the pace of the answer, not a wait for a signal
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # the server closes (3.11 logs a cancelled handler as an error)
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self.closed.set()


async def read_request(reader: asyncio.StreamReader, connection: int) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(line, headers, body, connection)


@dataclass
class Proxy:
    lines: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader, 0)
            if request is None:
                return
            self.lines.append(request.line)
            self.authorizations.append(request.headers.get("proxy-authorization"))
            method, target, _ = request.line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # absolute form: http://host:port/path
                authority, _, path = target.removeprefix("http://").partition("/")
                host, _, port = authority.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                head = f"{method} /{path} HTTP/1.1\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in request.headers.items() if k != "proxy-authorization"
                )
                up_writer.write(head.encode() + b"\r\n" + request.body)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
