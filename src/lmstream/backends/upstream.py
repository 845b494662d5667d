"""Shared plumbing of the HTTP upstream backends (``openai``, ``ollama``, ``anthropic``).

Each upstream kind subclasses :class:`UpstreamBackend` and says only what is specific
to its wire format: the request (``build``) and how the response becomes internal
events (``decoder``: framing over a pure payload fold). Everything else is shared,
once, here and in the three modules named under "Where the rest lives"::

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
* Bodies are decoded as bytes, whole frames only, by the kind's ``decoder()``
  (``backends/upstream_wire.py``).

Where the rest lives: failures mapped to our exceptions and the retry budget in
``backends/upstream_errors.py``; the per-model ``options`` (headers, timeouts, retries,
``status_wait``, ``context_window``, ``capabilities``) in ``backends/upstream_config.py``.

Each kind says what it passes through (``capabilities``: structured output in the
upstream's own form, logprobs, logit bias); ``capabilities.admit`` refuses the rest
before the request is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from lmstream.backends.base import BackendContext, BackendStats, EventStream, ModelInfo
from lmstream.backends.framing import NdjsonDecoder
from lmstream.backends.transport import (
    TransportError,
    UpstreamClient,
    UpstreamResponse,
    as_client,
    ndjson_lines,
    sse_events,
)
from lmstream.backends.upstream_config import UpstreamConfig, model_capabilities
from lmstream.backends.upstream_errors import (
    MAX_ERROR_BODY,
    RetryBudget,
    UpstreamUnavailable,
    error_message,
    is_retryable,
    parse_json,
    status_error,
    text_of,
)
from lmstream.backends.upstream_wire import NdjsonWire, SSEWire, WireDecoder
from lmstream.capabilities import Capabilities
from lmstream.errors import LmstreamError, UpstreamTimeout
from lmstream.events import Done, Event, TextDelta, Usage
from lmstream.request import ChatRequest
from lmstream.settings import ModelConfig
from lmstream.text import PendingLogprobs, StopMatcher

# The names the upstream kinds and their tests have always imported from here are
# re-exported; each is defined in the module named above it.
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

DRAIN_SECONDS = 0.05


def _delta(text: str, logprobs: PendingLogprobs | None) -> TextDelta:
    """Text the stop matcher released, with the log-probabilities of its tokens (if asked)."""
    return TextDelta(text) if logprobs is None else TextDelta(text, logprobs=logprobs.take(len(text)))


@dataclass(slots=True)
class _Sent:
    response: UpstreamResponse
    sent_at: float  # loop time the request went out (the first-token clock)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _resolve_after(future: asyncio.Future[None], _: asyncio.Future[None]) -> None:
    _resolve(future)


def _resolve_if_ok(future: asyncio.Future[None], response: UpstreamResponse) -> None:
    if response.status < 400:
        _resolve(future)


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
        return self._events  # `async for` steps the generator itself: no call of ours per event

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
            capabilities=model_capabilities(self.capabilities, config),
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
        budget = RetryBudget(self.config.retries)
        loop = asyncio.get_running_loop()
        status_by = loop.time() + self.config.status_wait
        content, headers = self._request(request)
        # lmstream's client writes the request now, on an idle pooled connection (no loop
        # turn before the upstream has it); see _begun for what follows
        begin = getattr(self.http, "begin", None)
        begun = None
        if begin is not None:
            head: asyncio.Future[None] = loop.create_future()
            begun = begin(self.url, content, headers, partial(_resolve_if_ok, head))
        late = False  # past status_wait with no status: the stream waits on for it
        if begun is not None:
            sent = await self._begun(begun, head, status_by)
            if sent is not None:
                pending: asyncio.Future[_Sent] = loop.create_future()
                pending.set_result(sent)
                return _Stream(self._generate(request, pending, budget), pending)
            late = not begun.head.done()
        # The send's task: the request sent (or `begun` awaited), retried until a status
        # below 400. `settled` is set when it ends; past `status_wait` a timer settles it
        # (no status yet: the wait goes on in the stream, see the module's notes). A timer,
        # not asyncio.timeout: nothing to cancel.
        settled: asyncio.Future[None] = loop.create_future()
        pending = asyncio.ensure_future(self._send(request, budget, settled, content, headers, begun))
        if begun is not None:  # a send cancelled before it began never closes what it was given
            pending.add_done_callback(lambda task: task.cancelled() and begun.close())
        if late:
            return _Stream(self._generate(request, pending, budget), pending)
        timer = loop.call_at(status_by, _resolve, settled)
        try:
            await settled
        except BaseException:
            pending.cancel()
            raise
        finally:
            timer.cancel()
        if pending.done():
            pending.result()  # raises the upstream's refusal before our first byte
        return _Stream(self._generate(request, pending, budget), pending)

    async def _begun(self, begun: Any, head: asyncio.Future[None], status_by: float) -> _Sent | None:
        """The first try's head, written by ``begin``: its ``_Sent`` when a status below
        400 comes by ``status_by`` (the usual case, which needs no task of its own: ``head``
        is resolved in the callback that reads the status, so this task wakes one loop
        turn after it), else None for the send's task to decide (an error, a retry, a late
        status), handed the response as it stands."""
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        begun.head.add_done_callback(partial(_resolve_after, head))  # any other outcome
        timer = loop.call_at(status_by, _resolve, head)
        try:
            await head
        except BaseException:
            begun.close()
            raise
        finally:
            timer.cancel()
        if begun.head.done() and begun.head.exception() is None and begun.status < 400:
            return _Sent(begun, sent_at)
        return None

    # Plumbing ------------------------------------------------------------------------

    def _request(self, request: ChatRequest) -> tuple[bytes, dict[str, str]]:
        """The upstream request's body and headers."""
        body, headers = self.build(request)
        return orjson.dumps(body), {
            "content-type": "application/json", "accept-encoding": "identity", **self.config.headers, **headers
        }  # fmt: skip

    async def _send(
        self,
        request: ChatRequest,
        budget: RetryBudget,
        settled: asyncio.Future[None],
        content: bytes,
        headers: dict[str, str],
        begun: Any = None,
    ) -> _Sent:
        """The request, retried until a status below 400; ``settled`` is set when it
        returns or raises (the task is done by the time its waiter runs). ``begun``: the
        first try's response, already written (``HTTPClient.begin``)."""
        try:
            return await self._send_retried(request, budget, content, headers, begun)
        finally:
            _resolve(settled)

    async def _send_retried(
        self, request: ChatRequest, budget: RetryBudget, content: bytes, headers: dict[str, str], begun: Any = None
    ) -> _Sent:
        loop = asyncio.get_running_loop()
        while True:
            sent_at = loop.time()
            error: LmstreamError
            try:
                async with asyncio.timeout(self.config.first_token_timeout):
                    if begun is None:
                        response = await self.http.post(self.url, content, headers, connect_timeout=self.config.connect_timeout)
                    else:  # only a client with a ``begin`` is given one
                        response = await self.http.post(
                            self.url, content, headers, connect_timeout=self.config.connect_timeout, begun=begun
                        )
                        begun = None  # a try after it sends anew
                    if response.status < 400:
                        return _Sent(response, sent_at)
                    try:
                        raw = await response.read()
                    finally:
                        await response.aclose()
                error = status_error(self.kind, response.status, raw[:MAX_ERROR_BODY], response.header("retry-after"))
            except TimeoutError:
                raise UpstreamTimeout(
                    f"the {self.kind} upstream at {self.url} did not answer within "
                    f"{self.config.first_token_timeout:g}s"
                ) from None
            except TransportError as exc:
                error = UpstreamUnavailable(f"cannot reach the {self.kind} upstream at {self.url}: {exc or type(exc).__name__}")
            backoff = budget.backoff(error)
            if backoff is None:
                raise error
            log.warning("%s; retrying in %.2fs", error.message, backoff)
            await asyncio.sleep(backoff)  # backoff policy, not a signal

    async def _generate(
        self, request: ChatRequest, pending: asyncio.Future[_Sent], budget: RetryBudget
    ) -> AsyncGenerator[Event, None]:
        self.active += 1
        loop = asyncio.get_running_loop()
        matcher = StopMatcher(request.stop)
        logprobs = None if request.logprobs is None else PendingLogprobs()
        passthrough = logprobs is None and not matcher.active  # a text delta goes on as it came
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
                        try:  # the client keeps one timer, not one per read
                            data = await response.receive(deadline)
                        except TimeoutError:
                            raise UpstreamTimeout(f"the {self.kind} upstream sent no {what} in time") from None
                        except TransportError as exc:
                            raise UpstreamUnavailable(
                                f"the {self.kind} upstream broke the stream: {exc or type(exc).__name__}"
                            ) from None
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
                                if passthrough and event.text and event.logprobs is None and event.index == 0:
                                    yield event  # no stop to look for, no logprobs to pace: as it came
                                    continue
                                if logprobs is not None:
                                    logprobs.add_all(event.logprobs or (), len(event.text))
                                emit, hit = matcher.feed(event.text)
                                if emit:
                                    if logprobs is None and event.logprobs is None and event.index == 0 and emit == event.text:
                                        yield event  # what _delta would make again
                                    else:
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
                    backoff = None if received else budget.backoff(exc)
                    if backoff is None:
                        raise
                    log.warning("%s; retrying in %.2fs", exc.message, backoff)
                finally:
                    await response.aclose()
                await asyncio.sleep(backoff)  # backoff policy, not a signal
                sent = await self._send_retried(request, budget, *self._request(request))
        finally:
            self.active -= 1
            await _settle(pending)

    def _estimate(self, request: ChatRequest, completion_tokens: int) -> Usage:
        prompt = request.raw_prompt if request.raw_prompt is not None else "\n".join(m.content for m in request.messages)
        return Usage(self.count_tokens(prompt), completion_tokens)
