"""Shared plumbing of the HTTP upstream backends (``openai``, ``ollama``, ``anthropic``).

Each upstream kind subclasses :class:`UpstreamBackend` and says only what is specific
to its wire format: the request (``build``) and how the response becomes internal
events (``decoder``: framing over a pure payload fold). Everything else is here,
once::

    open(request)
      └─ send ──► POST, connect_timeout ──► status within status_wait?
      │             429/503 ─► Overloaded (Retry-After)      ┐ retried (upstream_retries)
      │             5xx, connect error ─► UpstreamUnavailable ┘ before the first token
      │             other 4xx ─► UpstreamError(upstream's message; 400/404/413/422 keep
      │                          their status, 401/403 are our credentials: 502)
      └─ returns the event stream (the hub drains it in the generation task)
           response.receive() under first_token_timeout, then token_timeout per read;
           the kind's WireDecoder: bytes -> framing -> payload fold -> events
           StopMatcher: a stop string the upstream leaked never reaches the client
           usage from the upstream, else estimated
           at the end: the rest of the body drained (≤ 50 ms) so the connection is reused
           finally: response.aclose()  ◄── hub cancels (client gone): upstream sees it

Deliberate choices:

* ``open()`` waits at most ``status_wait`` seconds for the upstream's status, so an
  upstream 4xx/5xx is an HTTP error to our client. Some upstreams (Ollama) send their
  headers only with the first token; past ``status_wait`` the wait continues inside the
  generation task, where a client that leaves cancels it (a late error then arrives as
  the dialect's error event).
* Retries happen only while nothing has been received: a stream that breaks after a
  token is an error, never a replay (no token is sent twice).
* Timeouts are ``asyncio`` deadlines around each step, not the HTTP client's read
  timeouts, so the first-token budget covers the wait for headers and prompt processing.
* The HTTP client is a seam (``backends/transport.py``: post, receive bytes, release):
  lmstream's own (``lmstream.httpclient``) in the app, an ``httpx.AsyncClient`` where a
  caller hands one (tests mock upstreams at httpx's transport).
* Streams are requested with ``Accept-Encoding: identity``: a compressing upstream or
  proxy would buffer the tokens.
* Bodies are decoded as bytes (``backends/framing.py``: ``SSEDecoder``, ``NdjsonDecoder``)
  and only whole frames reach the kinds' payload folds; both survive a split at any byte.
  A kind says how with ``decoder()``: a :class:`WireDecoder` (``feed(bytes)``, ``end()``),
  usually :class:`SSEWire` or :class:`NdjsonWire` over its pure fold.

Per-model ``options`` (all optional): ``headers`` (extra request headers),
``connect_timeout``, ``first_token_timeout``, ``token_timeout`` (default: Settings),
``retries`` (default ``Settings.upstream_retries``), ``status_wait`` (default 2 s),
``context_window``, ``capabilities`` (a table overriding what the kind passes
through, e.g. ``{ logprobs = false }`` for an Ollama older than 0.12.11).

Each kind says what it passes through (``capabilities``: structured output in the
upstream's own form, logprobs, logit bias); ``capabilities.admit`` refuses the rest
before the request is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import orjson

from lmstream.backends.base import BackendContext, BackendStats, EventStream, ModelInfo
from lmstream.backends.framing import NdjsonDecoder, SSEDecoder
from lmstream.backends.transport import (
    TransportError,
    UpstreamClient,
    UpstreamResponse,
    as_client,
    ndjson_lines,
    sse_events,
)
from lmstream.capabilities import Capabilities
from lmstream.errors import LmstreamError, Overloaded, UpstreamError, UpstreamTimeout
from lmstream.events import Done, Event, TextDelta, Usage
from lmstream.request import ChatRequest
from lmstream.settings import ModelConfig
from lmstream.text import PendingLogprobs, StopMatcher

__all__ = [
    "NdjsonDecoder",
    "NdjsonWire",
    "SSEWire",
    "UpstreamBackend",
    "UpstreamConfig",
    "UpstreamUnavailable",
    "WireDecoder",
    "error_message",
    "is_retryable",
    "ndjson_lines",
    "parse_json",
    "sse_events",
    "status_error",
    "text_of",
]

log = logging.getLogger("lmstream.upstream")

DEFAULT_STATUS_WAIT = 2.0
DRAIN_SECONDS = 0.05
_MAX_BACKOFF = 2.0
_MAX_ERROR_BODY = 64 * 1024
# 4xx statuses that describe our client's request, so they are passed on as they are;
# any other upstream status (401/403: our credentials, 5xx) is a 502 to our client.
_CLIENT_STATUSES = frozenset({400, 404, 413, 422})


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, failed with a 5xx, or broke its stream: retryable."""


def is_retryable(exc: LmstreamError) -> bool:
    if isinstance(exc, Overloaded | UpstreamUnavailable):
        return True
    if isinstance(exc, UpstreamTimeout):
        return False
    return isinstance(exc, UpstreamError) and (exc.upstream_status or 0) >= 500


def error_message(body: bytes, fallback: str) -> str:
    """The human message inside an upstream error body, whatever its dialect."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or fallback
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            for key in ("message", "detail", "error"):
                if isinstance(error.get(key), str):
                    return str(error[key])
    return fallback


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def status_error(kind: str, status: int, body: bytes, retry_after: str | None = None) -> LmstreamError:
    """One upstream HTTP error status → our exception (see the module docstring)."""
    message = error_message(body, _reason(status))
    text = f"the {kind} upstream answered {status}: {message}"
    if status in (429, 503):
        seconds = int(retry_after) if retry_after and retry_after.strip().isdigit() else 1
        return Overloaded(text, retry_after=max(1, seconds))
    if status >= 500:
        return UpstreamUnavailable(text, upstream_status=status)
    error = UpstreamError(text, upstream_status=status)
    if status in _CLIENT_STATUSES:
        error.status_code = status
    return error


def text_of(data: str | bytes, limit: int = 200) -> str:
    """The start of a payload, for an error message."""
    return (data if isinstance(data, str) else data[: limit * 4].decode("utf-8", "replace"))[:limit]


def parse_json(text: str | bytes, kind: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"the {kind} upstream sent malformed JSON ({exc}): {text_of(text)}") from None


class WireDecoder(Protocol):
    """A response body's bytes in, internal events out (a kind's framing and payload fold).

    Events go into the caller's ``out`` list, so the events decoded before an in-band
    error (raised as ``LmstreamError``) are still delivered, in order, before it.
    """

    def feed(self, data: bytes, out: list[Event]) -> None: ...

    def end(self, out: list[Event]) -> None:
        """The body ended without the kind's end marker: the closing events, or raise."""
        ...


class SSEWire:
    """SSE framing over a fold of ``(event name, data)``."""

    __slots__ = ("_end", "_fold", "_sse")

    def __init__(self, fold: Callable[[str, bytes], list[Event]], end: Callable[[], list[Event]]) -> None:
        self._sse = SSEDecoder()
        self._fold = fold
        self._end = end

    def feed(self, data: bytes, out: list[Event]) -> None:
        for name, payload in self._sse.feed(data):
            out += self._fold(name, payload)

    def end(self, out: list[Event]) -> None:
        out += self._end()


class NdjsonWire:
    """NDJSON framing over a fold of one line."""

    __slots__ = ("_end", "_fold", "_lines")

    def __init__(self, fold: Callable[[bytes], list[Event]], end: Callable[[], list[Event]]) -> None:
        self._lines = NdjsonDecoder()
        self._fold = fold
        self._end = end

    def feed(self, data: bytes, out: list[Event]) -> None:
        for line in self._lines.feed_bytes(data):
            out += self._fold(line)

    def end(self, out: list[Event]) -> None:
        for line in self._lines.flush():
            out += self._fold(line.encode())
        if not any(isinstance(event, Done) for event in out):
            out += self._end()


def _delta(text: str, logprobs: PendingLogprobs | None) -> TextDelta:
    """Text the stop matcher released, with the log-probabilities of its tokens (if asked)."""
    return TextDelta(text) if logprobs is None else TextDelta(text, logprobs=logprobs.take(len(text)))


def _capabilities(default: Capabilities, config: ModelConfig) -> Capabilities:
    override = config.options.get("capabilities") or {}
    known = {f.name for f in dataclasses.fields(Capabilities)}
    if not isinstance(override, dict) or not set(override) <= known:
        raise ValueError(f"model {config.name!r}: options.capabilities takes {', '.join(sorted(known))}")
    return dataclasses.replace(default, **{name: bool(value) for name, value in override.items()})


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    kind: str
    base_url: str
    model: str
    api_key: str | None
    headers: dict[str, str]
    connect_timeout: float
    first_token_timeout: float
    token_timeout: float
    retries: int
    status_wait: float
    context_window: int | None

    @classmethod
    def from_model(cls, kind: str, config: ModelConfig, context: BackendContext) -> UpstreamConfig:
        if not config.url:
            raise ValueError(f"model {config.name!r}: backend {kind!r} needs `url` (the upstream's base URL)")
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"model {config.name!r}: `url` must be an http(s) URL, got {config.url!r}")
        options, settings = config.options, context.settings
        headers = options.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError(f"model {config.name!r}: options.headers must be a table of strings")
        window = options.get("context_window")
        return cls(
            kind=kind,
            base_url=config.url.rstrip("/"),
            model=config.upstream_model or config.name,
            api_key=config.api_key,
            headers={str(k): str(v) for k, v in headers.items()},
            connect_timeout=float(options.get("connect_timeout", settings.connect_timeout)),
            first_token_timeout=float(options.get("first_token_timeout", settings.first_token_timeout)),
            token_timeout=float(options.get("token_timeout", settings.token_timeout)),
            retries=max(0, int(options.get("retries", settings.upstream_retries))),
            status_wait=float(options.get("status_wait", DEFAULT_STATUS_WAIT)),
            context_window=None if window is None else int(window),
        )


@dataclass(slots=True)
class _Budget:
    """Attempts left for one generation (shared by the send and the stream)."""

    left: int
    used: int = field(default=0)

    def take(self) -> float | None:
        """The backoff before the next attempt, or None when none is left."""
        if self.left <= 0:
            return None
        self.left -= 1
        self.used += 1
        return min(0.1 * 2.0**self.used, _MAX_BACKOFF)


@dataclass(slots=True)
class _Sent:
    response: UpstreamResponse
    sent_at: float  # loop time the request went out (the first-token clock)


async def _settle(pending: asyncio.Future[_Sent]) -> None:
    """Stop a send still in flight, or close the response it got."""
    if not pending.done():
        pending.cancel()
    elif not pending.cancelled() and pending.exception() is None:
        await pending.result().response.aclose()


class _Stream:
    """One generation's ``EventStream``. ``aclose()`` also stops the upstream request
    when the stream is closed without ever being iterated."""

    __slots__ = ("_events", "_pending")

    def __init__(self, events: AsyncGenerator[Event, None], pending: asyncio.Future[_Sent]) -> None:
        self._events = events
        self._pending = pending

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    def __anext__(self) -> Awaitable[Event]:
        return self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            await _settle(self._pending)


class UpstreamBackend:
    """An upstream server as a ``Backend``. Subclasses set ``kind``, ``path``, and
    implement ``build`` (body and headers) and ``decoder`` (bytes → events)."""

    kind: ClassVar[str]
    path: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: ModelConfig, context: BackendContext) -> None:
        self.config = UpstreamConfig.from_model(self.kind, config, context)
        self.http: UpstreamClient = as_client(context.http)
        self.url = self.config.base_url + self.path
        self.info = ModelInfo(
            name=config.name,
            backend=self.kind,
            context_window=self.config.context_window,
            aliases=tuple(config.aliases),
            owned_by=urlsplit(self.config.base_url).netloc,
            details={"family": self.kind, "upstream": self.config.base_url, "upstream_model": self.config.model},
            capabilities=_capabilities(self.capabilities, config),
            default_max_tokens=context.settings.max_tokens_default(config, None),
            supports_images=True if config.supports_images is None else config.supports_images,
        )
        self.active = 0
        self.tokens_generated = 0

    # What each kind provides ---------------------------------------------------------

    def build(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body and the headers (credentials included) of the upstream request."""
        raise NotImplementedError

    def decoder(self) -> WireDecoder:
        """A fresh decoder for one 2xx response: TextDelta* Usage? Done; raises
        LmstreamError on in-band errors."""
        raise NotImplementedError

    # The Backend protocol ------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """An estimate: the upstream's tokenizer is not known here (its usage is exact)."""
        if request.raw_prompt is not None:
            return self.count_tokens(request.raw_prompt)
        return sum(self.count_tokens(m.content) + 4 for m in request.messages)

    def stats(self) -> BackendStats:
        return BackendStats(active=self.active, tokens_generated=self.tokens_generated)

    async def open(self, request: ChatRequest) -> EventStream:
        budget = _Budget(self.config.retries)
        pending = asyncio.ensure_future(self._send(request, budget))
        try:
            await asyncio.wait({pending}, timeout=self.config.status_wait)
        except BaseException:
            pending.cancel()
            raise
        if pending.done():
            pending.result()  # raises the upstream's refusal before our first byte
        return _Stream(self._generate(request, pending, budget), pending)

    # Plumbing ------------------------------------------------------------------------

    async def _send(self, request: ChatRequest, budget: _Budget) -> _Sent:
        body, headers = self.build(request)
        content = orjson.dumps(body)
        headers = {"content-type": "application/json", "accept-encoding": "identity", **self.config.headers, **headers}
        loop = asyncio.get_running_loop()
        while True:
            sent_at = loop.time()
            error: LmstreamError
            try:
                async with asyncio.timeout(self.config.first_token_timeout):
                    response = await self.http.post(self.url, content, headers, connect_timeout=self.config.connect_timeout)
                    if response.status < 400:
                        return _Sent(response, sent_at)
                    try:
                        raw = await response.read()
                    finally:
                        await response.aclose()
                error = status_error(self.kind, response.status, raw[:_MAX_ERROR_BODY], response.header("retry-after"))
            except TimeoutError:
                raise UpstreamTimeout(
                    f"the {self.kind} upstream at {self.url} did not answer within "
                    f"{self.config.first_token_timeout:g}s"
                ) from None
            except TransportError as exc:
                error = UpstreamUnavailable(f"cannot reach the {self.kind} upstream at {self.url}: {exc or type(exc).__name__}")
            backoff = budget.take() if is_retryable(error) else None
            if backoff is None:
                raise error
            log.warning("%s; retrying in %.2fs", error.message, backoff)
            await asyncio.sleep(backoff)  # backoff policy, not a signal

    async def _receive(self, response: UpstreamResponse, deadline: float, what: str) -> bytes:
        try:
            return await response.receive(deadline)  # the client keeps one timer, not one per read
        except TimeoutError:
            raise UpstreamTimeout(f"the {self.kind} upstream sent no {what} in time") from None
        except TransportError as exc:
            raise UpstreamUnavailable(f"the {self.kind} upstream broke the stream: {exc or type(exc).__name__}") from None

    async def _generate(
        self, request: ChatRequest, pending: asyncio.Future[_Sent], budget: _Budget
    ) -> AsyncGenerator[Event, None]:
        self.active += 1
        loop = asyncio.get_running_loop()
        matcher = StopMatcher(request.stop)
        logprobs = None if request.logprobs is None else PendingLogprobs()
        received = 0
        usage: Usage | None = None
        try:
            sent = await pending
            while True:
                response, decoder = sent.response, self.decoder()
                try:
                    while True:
                        if received:
                            deadline, what = loop.time() + self.config.token_timeout, "token"
                        else:
                            deadline, what = sent.sent_at + self.config.first_token_timeout, "first token"
                        data = await self._receive(response, deadline, what)
                        events: list[Event] = []
                        failure: LmstreamError | None = None
                        try:
                            decoder.feed(data, events) if data else decoder.end(events)
                        except LmstreamError as exc:  # after the events before it
                            failure = exc
                        for event in events:
                            if isinstance(event, TextDelta):
                                received += 1
                                self.tokens_generated += 1
                                if logprobs is not None:
                                    logprobs.add_all(event.logprobs or (), len(event.text))
                                emit, hit = matcher.feed(event.text)
                                if emit:
                                    yield _delta(emit, logprobs)
                                if hit is not None:
                                    yield usage or self._estimate(request, received)
                                    yield Done("stop_sequence", stop_sequence=hit)
                                    return
                            elif isinstance(event, Usage):
                                usage = event
                            elif isinstance(event, Done):
                                await response.drain(DRAIN_SECONDS)  # so the connection is reused
                                tail = matcher.flush()
                                if tail:
                                    yield _delta(tail, logprobs)
                                yield usage or self._estimate(request, received)
                                yield event
                                return
                            else:  # e.g. a tool call's deltas: content too, never replayed by a retry
                                received += 1
                                yield event
                        if failure is not None:
                            raise failure
                        if not data:
                            raise UpstreamUnavailable(f"the {self.kind} upstream ended its stream before it was done")
                except LmstreamError as exc:
                    backoff = None if received or not is_retryable(exc) else budget.take()
                    if backoff is None:
                        raise
                    log.warning("%s; retrying in %.2fs", exc.message, backoff)
                finally:
                    await response.aclose()
                await asyncio.sleep(backoff)  # backoff policy, not a signal
                sent = await self._send(request, budget)
        finally:
            self.active -= 1
            await _settle(pending)

    def _estimate(self, request: ChatRequest, completion_tokens: int) -> Usage:
        prompt = request.raw_prompt if request.raw_prompt is not None else "\n".join(m.content for m in request.messages)
        return Usage(self.count_tokens(prompt), completion_tokens)
