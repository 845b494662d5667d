"""The request guard: what a request must be before any route sees it.

``RequestGuard`` is an ASGI middleware (it sits inside the CORS middleware, see
``http/app.py``):

* **Origins, when no API key is set** (none configured and none ever stored: the
  access service's ``KeyRing.required``). A keyless server trusts whoever can reach it,
  which includes every web page the user opens: a page on ``evil.example`` can POST to
  ``http://127.0.0.1:8000`` (a "simple" request needs no preflight), and a DNS
  rebinding attack makes ``evil.example`` *resolve* to 127.0.0.1 so that even reads
  are same-origin to the browser. So, with no key configured, the ``Host`` header must
  be a loopback name (``localhost``, ``*.localhost``), an IP address (an attacker's
  name cannot rebind a literal address), the bound host or one of
  ``settings.allowed_hosts``; and an ``Origin`` header, when a browser sends one, must
  be the served origin itself or one of ``settings.cors_origins``. Anything else is a
  403 in the path's dialect shape. With keys set a foreign page cannot authenticate,
  and the check is left to the key.
* **Body size.** A ``Content-Length`` over ``settings.max_body_bytes`` is answered 413
  before a byte of the body is read; a chunked body is counted as it arrives and the
  read that crosses the limit raises ``PayloadTooLarge`` (the route renders it), so a
  100 MB body is never buffered first. A path matching one of ``path_limits`` has that
  limit instead (a document upload: ``rag.max_document_bytes`` and the form around it).
* **Body pace.** While a body is incomplete, each read waits at most
  ``settings.body_timeout`` seconds (``RequestTimeout``, 408): a client that sends its
  headers and then stalls does not hold a route forever. Reads after the body (a
  streaming response waiting for the disconnect) are not limited.

The media-type rule of JSON routes (415) is ``http/media.py``'s ``require_json``,
applied by ``endpoint``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Iterable, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmstream.access import Access
from lmstream.errors import (
    Forbidden,
    LmstreamError,
    PayloadTooLarge,
    RequestTimeout,
    StoreUnavailable,
)
from lmstream.http.application import response_watch
from lmstream.http.endpoint import error_response
from lmstream.http.headers import request_headers
from lmstream.http.shapes import error_shape

__all__ = ["HostPolicy", "RequestGuard"]

def _split_host(value: str) -> tuple[str, str]:
    """``host[:port]`` (IPv6 in brackets) → (host, port); the host lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return host, port


_SEEN_HOSTS = 256


class HostPolicy:
    """Which ``Host`` names a keyless server answers, and which origins may call it."""

    def __init__(self, *, bound_host: str, allowed_hosts: Iterable[str], cors_origins: Iterable[str]) -> None:
        self.names = {name.strip().lower() for name in allowed_hosts if name.strip()}
        if bound_host and not _is_address(bound_host):
            self.names.add(bound_host.lower())
        self.cors_origins = {origin.rstrip("/") for origin in cors_origins}
        self.any_origin = "*" in self.cors_origins
        self._seen: dict[str, bool] = {}  # host -> allowed: parsing an address costs more than the rest of the check

    def host_allowed(self, host: str) -> bool:
        allowed = self._seen.get(host)
        if allowed is None:
            allowed = _is_address(host) or host == "localhost" or host.endswith(".localhost") or host in self.names
            if len(self._seen) < _SEEN_HOSTS:  # the Host header is the client's: bounded
                self._seen[host] = allowed
        return allowed

    def check(self, headers: Headers) -> None:
        """Raise ``Forbidden`` unless the Host and the Origin (if any) are acceptable."""
        host_header = headers.get("host", "")
        host, port = _split_host(host_header)
        if not self.host_allowed(host):
            raise Forbidden(
                f"this server does not answer to the host name {host!r} (no API key is set, so only "
                "loopback names, IP addresses and `allowed_hosts` are accepted; this protects "
                "against DNS rebinding)"
            )
        origin = headers.get("origin")
        if origin is None or self.any_origin or origin.rstrip("/") in self.cors_origins:
            return
        parts = urlsplit(origin)
        same = parts.scheme in ("http", "https") and parts.hostname is not None
        if same:
            default = "443" if parts.scheme == "https" else "80"
            try:
                origin_port = str(parts.port) if parts.port is not None else default
            except ValueError:
                same = False
            else:
                same = (parts.hostname or "").lower() == host and origin_port == (port or default)
        if not same:
            raise Forbidden(
                f"requests from the web origin {origin!r} are not allowed: list it in `cors_origins` "
                "to let its pages call this server (or set an API key)"
            )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class RequestGuard:
    """The ASGI middleware described in the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: HostPolicy,
        max_body_bytes: int,
        body_timeout: float,
        path_limits: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.policy = policy
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.path_limits = tuple(path_limits)

    def _limit(self, path: str) -> int:
        return next((limit for pattern, limit in self.path_limits if pattern.fullmatch(path)), self.max_body_bytes)

    async def _keyless(self, scope: Scope) -> bool:
        """No key is configured and none was ever stored (``KeyRing.required``); also
        before the app has started, and while the store cannot tell (the stricter rule)."""
        app = scope.get("app")
        state = getattr(getattr(app, "state", None), "lmstream", None)
        access = getattr(state, "access", None)
        if not isinstance(access, Access):
            return True
        try:
            return not await access.keys.required()
        except StoreUnavailable:
            return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        limit = self._limit(scope["path"])
        try:
            if await self._keyless(scope):
                self.policy.check(headers)
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise self._too_large(limit)
        except LmstreamError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        response, inner_send = response_watch(scope, send)  # `started`: a late refusal cannot be sent
        guarded = _Guarded(self, receive, limit)
        try:
            await self.app(scope, guarded.receive, inner_send)
        except (PayloadTooLarge, RequestTimeout) as exc:  # read outside a route's `endpoint`
            if response.started:
                raise
            await self._refuse(scope, receive, send, exc)

    def _too_large(self, limit: int) -> PayloadTooLarge:
        setting = "max_body_bytes" if limit == self.max_body_bytes else "rag.max_document_bytes"
        return PayloadTooLarge(f"the request body is larger than {limit} bytes (`{setting}`)")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: LmstreamError) -> None:
        response = error_response(exc, error_shape(scope["path"]))
        if isinstance(exc, PayloadTooLarge):
            response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)


class _Guarded:
    """The ``receive`` a guarded request's app gets (its ``send`` is the response's watch,
    ``http/application.py``).

    Until the body is complete ``receive`` counts it and bounds each read's wait; after
    that it hands the server's own awaitable straight through — no coroutine frame of the
    guard's is held for a stream's life.
    """

    __slots__ = ("complete", "guard", "inner_receive", "limit", "received")

    def __init__(self, guard: RequestGuard, receive: Receive, limit: int) -> None:
        self.guard = guard
        self.inner_receive = receive
        self.limit = limit
        self.received = 0
        self.complete = False

    def receive(self) -> Awaitable[Message]:
        if self.complete:
            return self.inner_receive()
        pending = self.inner_receive()
        if isinstance(pending, asyncio.Future) and pending.done() and not pending.cancelled():
            # lmstream's server had it already: counted here, and its own future handed
            # through (no coroutine of the guard's, no timer)
            self._count(pending.result())
            return pending
        return self._read_body(pending)

    async def _read_body(self, pending: Awaitable[Message]) -> Message:
        timeout = self.guard.body_timeout
        try:
            async with asyncio.timeout(timeout):
                message = await pending
        except TimeoutError:
            raise RequestTimeout(f"the request body stalled for {timeout:g} s (`body_timeout`)") from None
        self._count(message)
        return message

    def _count(self, message: Message) -> None:
        """Count a body message against the limit; note the body's end."""
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise self.guard._too_large(self.limit)
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
