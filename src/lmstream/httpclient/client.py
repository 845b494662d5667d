"""``HTTPClient``: lmstream's HTTP/1.1 client for its upstreams (the ``UpstreamClient`` seam).

Why lmstream has its own: relaying a token through httpx costs a chain of async
generators per read (httpx → httpcore → h11 → anyio) and was half of lmstream's CPU
when relaying paced streams; the figures that chose this client over httpx, aiohttp's
client and httpcore are in BENCHMARKS.md and ARCHITECTURE.md. It does only what an
upstream backend needs, and all of it:

* HTTP/1.1 over TCP or TLS (``ssl.create_default_context``: certificate and host name
  verified; ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured, else certifi's bundle as
  httpx uses, else the system's);
* a keep-alive pool per origin (scheme, host, port): an idle connection is reused
  until ``keepalive_expiry`` seconds (kept below the common 5 s server default) and
  dropped as soon as the server closes it; at most ``max_idle`` idle connections;
* a spare connection per origin under concurrent load: when a request finds the pool
  empty, or takes its last idle connection, while another request to the same origin
  is in flight, one more connection is opened in the background and pooled, so the
  next new request does not pay a connect (TCP, and for TLS the handshake) before its
  first token (Envoy's predictive preconnect, at one connection). A lone client never
  triggers it; at most one is being opened per origin at a time; a failure is only
  logged (the next request connects as it would have);
* a connect timeout covering DNS, TCP, the proxy tunnel and the TLS handshake (the
  backends' own deadlines cover the rest: first token, between tokens);
* proxies from the environment (``httpclient/proxy.py``);
* a request sent on a reused connection that the server had already closed (nothing
  came back) is sent once more on a new connection, as browsers do; any other
  failure is the caller's to retry (``ConnectFailed`` / ``ReadFailed``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from lmstream.backends.transport import ConnectFailed, UpstreamResponse
from lmstream.httpclient.connection import Connection, Response
from lmstream.httpclient.proxy import Proxy, ProxyConfig

__all__ = ["HTTPClient", "default_ssl_context"]

_FORBIDDEN = str.maketrans("", "", "\r\n\0")
_log = logging.getLogger(__name__)
_SPARE_CONNECT_TIMEOUT = 10.0  # a spare for an origin no request has connected to yet


def default_ssl_context() -> ssl.SSLContext:
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if not (cafile or capath):
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:  # pragma: no cover - certifi comes with httpx
            pass
    return ssl.create_default_context(cafile=cafile, capath=capath)


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL, parsed once: its origin and the request head's first lines."""

    scheme: str
    host: str
    port: int
    origin_form: str  # /path?query
    host_header: str

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        return cls(parts.scheme, host, port, path, shown if port == default else f"{shown}:{port}")


class HTTPClient:
    """The app's one upstream client (built and closed in its lifespan)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        proxies: ProxyConfig | None = None,
        trust_env: bool = True,
        max_idle: int = 256,
        keepalive_expiry: float = 4.0,
        spares: bool = True,
    ) -> None:
        self._ssl = ssl_context
        self._proxies = proxies if proxies is not None else (ProxyConfig() if trust_env else ProxyConfig({}))
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._idle_count = 0
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._targets: dict[str, _Target] = {}
        self._open: set[Connection] = set()
        self._open_per_origin: dict[tuple[str, str, int], int] = {}
        self._spares = spares
        self._spare_tasks: dict[tuple[str, str, int], asyncio.Task[None]] = {}
        self._connect_timeouts: dict[tuple[str, str, int], float] = {}
        self._closed = False

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = default_ssl_context()
        return self._ssl

    def idle_connections(self, url: str) -> int:
        """Idle pooled connections to ``url``'s origin (for tests and /health)."""
        t = self._target(url)
        return len(self._idle.get((t.scheme, t.host, t.port), ()))

    def opening_spare(self, url: str) -> asyncio.Task[None] | None:
        """The spare connection being opened to ``url``'s origin, if any (it ends pooled,
        or dropped when the connect fails)."""
        t = self._target(url)
        return self._spare_tasks.get((t.scheme, t.host, t.port))

    def begin(
        self, url: str, content: bytes, headers: Mapping[str, str], on_head: Callable[[Response], None] | None = None
    ) -> Response | None:
        """Write the request now on an idle pooled connection, in the caller's step (the
        upstream has it before the event loop turns), or None when none is idle. Hand
        the response to ``post(begun=...)`` to wait for its head; ``on_head`` is called
        with it where its head arrives (in the connection's callback, before any task
        that awaits the head wakes)."""
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        target = self._target(url)
        connection = self._take_idle(target)
        if connection is None:
            return None
        proxy = self._proxies.for_origin(target.scheme, target.host, target.port)
        return connection.send(self._head(target, proxy, headers, len(content)) + content, on_head)

    async def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        begun: Response | None = None,
    ) -> UpstreamResponse:
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        target = self._target(url)
        proxy = self._proxies.for_origin(target.scheme, target.host, target.port)
        request = b""
        pooled = True
        response = begun
        while True:
            if response is not None:
                connection, reused = response.connection, True
            else:
                request = request or self._head(target, proxy, headers, len(content)) + content
                self._connect_timeouts[(target.scheme, target.host, target.port)] = connect_timeout
                idle = self._take_idle(target) if pooled else None
                reused = idle is not None
                connection = idle if idle is not None else await self._connect(target, proxy, connect_timeout)
                response = connection.send(request)
            try:
                await response.head
            except ConnectFailed:
                connection.close()
                if reused and not response.received_any:
                    pooled, response = False, None  # the server had closed the idle connection: a new one
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            return response

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._spare_tasks.values()):
            task.cancel()
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        self._idle_count = 0

    # connections ---------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _Target.parse(url)
            if len(self._targets) < 1024:
                self._targets[url] = target
        return target

    def _head(self, target: _Target, proxy: Proxy | None, headers: Mapping[str, str], length: int) -> bytes:
        through_proxy = proxy is not None and target.scheme == "http"
        path = f"http://{target.host_header}{target.origin_form}" if through_proxy else target.origin_form
        lines = [f"POST {path} HTTP/1.1", f"host: {target.host_header}", f"content-length: {length}"]
        if through_proxy and proxy is not None and proxy.authorization:
            lines.append(f"proxy-authorization: {proxy.authorization}")
        for name, value in headers.items():
            lines.append(f"{name.translate(_FORBIDDEN)}: {value.translate(_FORBIDDEN)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    def _take_idle(self, target: _Target) -> Connection | None:
        key = (target.scheme, target.host, target.port)
        idle = self._idle.get(key)
        if idle:
            loop = asyncio.get_running_loop()
            while idle:
                connection = idle.pop()
                self._idle_count -= 1
                if not connection.closed and loop.time() - connection.idle_since < self._expiry:
                    if not idle and self._spares and self._open_per_origin.get(key, 0) > 1:
                        self._open_spare(target, key)  # the last one, and another request in flight
                    return connection
                connection.close()
                self.forget(connection)  # out of the count now, not when its close is done
        if self._spares and self._open_per_origin.get(key, 0) > 0:
            self._open_spare(target, key)  # none idle, and another request in flight
        return None

    def _open_spare(self, target: _Target, key: tuple[str, str, int]) -> None:
        if key in self._spare_tasks or self._closed or self._idle_count >= self._max_idle:
            return
        task = asyncio.get_running_loop().create_task(self._spare(target, key))
        self._spare_tasks[key] = task
        task.add_done_callback(lambda _: self._spare_tasks.pop(key, None))

    async def _spare(self, target: _Target, key: tuple[str, str, int]) -> None:
        """Connect one spare connection to ``target`` and pool it (see the module's notes)."""
        proxy = self._proxies.for_origin(target.scheme, target.host, target.port)
        seconds = self._connect_timeouts.get(key, _SPARE_CONNECT_TIMEOUT)
        try:
            connection = await self._connect(target, proxy, seconds)
        except ConnectFailed as exc:
            _log.debug("spare connection not opened: %s", exc)
            return
        if self._closed:
            connection.close()
            return
        self.release(connection)

    # the connections' Pool protocol
    def release(self, connection: Connection) -> None:
        if self._closed or self._idle_count >= self._max_idle:
            connection.close()
            return
        connection.idle_since = connection.loop.time()
        self._idle.setdefault(connection.key, []).append(connection)
        self._idle_count += 1

    def forget(self, connection: Connection) -> None:
        if connection in self._open:
            self._open.remove(connection)
            self._open_per_origin[connection.key] -= 1
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)
            self._idle_count -= 1

    async def _connect(self, target: _Target, proxy: Proxy | None, seconds: float) -> Connection:
        loop = asyncio.get_running_loop()
        tls = self.ssl_context if target.scheme == "https" else None
        host, port = (proxy.host, proxy.port) if proxy is not None else (target.host, target.port)
        where = f"{target.scheme}://{target.host_header}" + (f" through the proxy {proxy.host}:{proxy.port}" if proxy else "")
        key = (target.scheme, target.host, target.port)
        connection: Connection | None = None
        try:
            async with asyncio.timeout(seconds):
                direct_tls = tls if proxy is None else None
                _, connection = await loop.create_connection(
                    lambda: Connection(loop, key, self),
                    host,
                    port,
                    ssl=direct_tls,
                    server_hostname=target.host if direct_tls else None,
                )
                if proxy is not None and tls is not None:
                    await self._tunnel(connection, target, proxy, tls)
        except TimeoutError:
            if connection is not None:
                connection.close()
            raise ConnectFailed(f"cannot connect to {where} within {seconds:g}s") from None
        except (OSError, ssl.SSLError, ConnectFailed) as exc:
            if connection is not None:
                connection.close()
            raise ConnectFailed(f"cannot connect to {where}: {exc or type(exc).__name__}") from exc
        if connection.closed:  # lost while the tunnel or handshake was made: not ours to count
            raise ConnectFailed(f"cannot connect to {where}: the connection closed")
        self._open.add(connection)
        self._open_per_origin[key] = self._open_per_origin.get(key, 0) + 1
        return connection

    async def _tunnel(self, connection: Connection, target: _Target, proxy: Proxy, tls: ssl.SSLContext) -> None:
        """``CONNECT`` through the proxy, then TLS with the target inside the tunnel."""
        authority = target.host_header if target.port != 443 else f"{target.host_header}:443"
        lines = [f"CONNECT {authority} HTTP/1.1", f"host: {authority}"]
        if proxy.authorization:
            lines.append(f"proxy-authorization: {proxy.authorization}")
        response = connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await response.head
        connection.response = None
        if not 200 <= response.status < 300:
            raise ConnectFailed(f"the proxy refused the tunnel: {response.status}")
        assert connection.transport is not None
        transport = await connection.loop.start_tls(connection.transport, connection, tls, server_hostname=target.host)
        if transport is None:
            raise ConnectFailed("the TLS handshake through the proxy failed")
        connection.transport = transport
