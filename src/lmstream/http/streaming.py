"""The one place where a generation becomes a streaming HTTP response.

Cancellation flows through structure (see ARCHITECTURE.md)::

    client closes ─► the response's receive() (a future) ─► cancels the sending task
    ─► ``follow_frames`` leaves ``stream.attach`` ─► last consumer gone: the hub cancels
    the generation (now, or after the grace period) ─► backend stream ``aclose()``
    ─► worker thread stop flag / upstream response closed.

Every streaming dialect (SSE or NDJSON) goes through ``stream_response``: heartbeats
(none for NDJSON), ``Cache-Control: no-cache``, ``X-Accel-Buffering: no``, never
compressed. The heartbeat is one comment *line* with no blank line after it
(``: ping\n``). A comment followed by a blank line (``: ping\n\n``, sse-starlette's
form) ends an "event" in decoders that keep the last ``id:`` across events —
httpx-sse, and the OpenAI and Anthropic SDKs' own decoders — which then hand client
code an event with empty data after every heartbeat on a stream with ids. A lone
comment line is ignored by every SSE parser (the spec's, the browser's
``EventSource``, those decoders, the web page's reader) and still keeps proxies from
timing the connection out.

Deliberate divergence from sse-starlette's ``EventSourceResponse`` (whose framing,
``ServerSentEvent``, every SSE dialect still uses): :class:`StreamResponse` runs each
stream with one bare ``receive()`` instead of a task group of four (body sender,
pinger, exit watcher, disconnect listener) and no per-send cancel scope. The request's
own task sends the body; the done-callback of ``receive()``'s awaitable cancels the
sender when the client leaves (lmstream's server returns a future there, so no task at
all; another server's coroutine gets a task). Heartbeats and server shutdown are one
task per event loop for all streams (:class:`_OpenStreams`): it sends a heartbeat
comment to each stream silent for its interval, and ends every stream when uvicorn is told to exit
(``AppStatus.should_exit``, set by sse-starlette's uvicorn hook), as sse-starlette does.
With 10,000 open streams this more than halves the memory per stream and the CPU per
token of ``EventSourceResponse`` (numbers in BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, cast

import orjson
from sse_starlette import ServerSentEvent
from sse_starlette.sse import AppStatus
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from lmstream.asgi import WRITTEN
from lmstream.completion import Completion
from lmstream.errors import error_from_code
from lmstream.events import Done, Error, Event
from lmstream.hub import Batch, Listener, ReplayGone, RunningStream, StreamHandle

__all__ = [
    "JSON",
    "Frame",
    "Frames",
    "LastChunk",
    "StreamResponse",
    "WireEncoder",
    "answer",
    "follow_frames",
    "ignored_header",
    "stream_response",
    "wait_unless_disconnected",
]

Frame = ServerSentEvent | bytes
Encoder = Callable[[int, Event], Iterable[Frame]]
_LAST_EVENTS = (Done, Error)  # a generation's log closes after one (what comes between goes with it)
_PING = b": ping\n"  # a comment line, deliberately without the blank line (module docstring)


class LastChunk(bytes):
    """A body chunk after which the stream has nothing more: ``StreamResponse`` sends it
    with the body's end (one write, the chunked terminator included)."""


class JSON(JSONResponse):
    """JSON rendered with orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _Listenable(Protocol):
    """A stream whose log can be listened to (``Generation``; ``EventLog.listen``)."""

    def listen(self, after: int, listener: Listener) -> None: ...
    def unlisten(self, listener: Listener) -> None: ...


class Frames:
    """A stream's events as wire bytes (``follow_frames``), for a ``StreamResponse``.

    Pulled (``async for``): the frames of events already there when the reader wakes up
    go out as one chunk (one write, not one per frame), and the chunk with the stream's
    last event is a ``LastChunk``. Pushed: a ``StreamResponse`` on lmstream's server
    listens to the stream's log and writes each event's chunk as it is recorded
    (``StreamResponse._push``), where the stream can be listened to (a generation of
    this instance; a stream read from another instance is pulled).
    """

    __slots__ = ("after", "encode", "grace", "stream")

    def __init__(self, stream: StreamHandle, encode: Encoder, grace: float, after: int) -> None:
        self.stream = stream
        self.encode = encode
        self.grace = grace
        self.after = after

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _pulled(self)

    def chunk(self, batch: Batch) -> bytes:
        """The wire bytes of ``batch``'s events, in one chunk."""
        encode = self.encode
        frames = encode(*batch[0]) if len(batch) == 1 else None
        if type(frames) is list and len(frames) == 1:  # the usual: one event, one frame
            frame = frames[0]
            return frame if isinstance(frame, bytes) else frame.encode()
        return b"".join(
            frame if isinstance(frame, bytes) else frame.encode()
            for seq, event in batch
            for frame in (frames if frames is not None else encode(seq, event))
        )

    def gone(self, exc: ReplayGone, last: int) -> bytes:
        """The last chunk for a reader that fell more than the replay buffer behind (a slow
        client on a fast stream): its response ends properly, with an error that says
        why, rather than a cut connection and a traceback."""
        reason = Error(
            f"this reader fell too far behind the stream ({exc.message}); "
            f"fetch the whole answer with GET /v1/streams/{self.stream.id}",
            ReplayGone.code,
        )
        return b"".join(f if isinstance(f, bytes) else f.encode() for f in self.encode(last, reason))


def follow_frames(stream: StreamHandle, encode: Encoder, *, grace: float, after: int = -1) -> Frames:
    """The wire bytes of a stream's events after ``after``, as a consumer attached with
    ``grace`` (``StreamHandle.attach``) reads them."""
    return Frames(stream, encode, grace, after)


async def _pulled(frames: Frames) -> AsyncIterator[bytes]:
    stream = frames.stream
    last = frames.after
    async with stream.attach(frames.grace):
        try:
            async for batch in stream.follow(frames.after):
                chunk = frames.chunk(batch)
                last = batch[-1][0]
                if chunk:
                    # the stream has ended and this is its last event: nothing follows
                    yield LastChunk(chunk) if stream.finished and last >= stream.next_seq - 1 else chunk
        except ReplayGone as exc:
            chunk = frames.gone(exc, last)
            if chunk:
                yield LastChunk(chunk)


class _OpenStreams:
    """One task per event loop for all its open streams: the heartbeats of those that
    would otherwise be silent for their interval (a heartbeat comes after 3/4 to 4/4 of it),
    and the end of every stream when uvicorn is told to exit. Per stream this costs a set entry, where a timer per stream would cost a
    handle and a timeout object each (BENCHMARKS.md: memory per open stream)."""

    def __init__(self) -> None:
        self.streams: set[StreamResponse] = set()  # each removes itself when it ends
        self.task: asyncio.Task[None] | None = None
        self.period = _SHUTDOWN_POLL

    def add(self, stream: StreamResponse) -> None:
        self.streams.add(stream)
        if stream.heartbeat > 0:
            self.period = min(self.period, stream.heartbeat / 4)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.streams:
                # The exit flag is set from uvicorn's signal handler (sse-starlette's hook),
                # with no event to wait for: polled, like sse-starlette does.
                await asyncio.sleep(self.period)
                if AppStatus.should_exit:
                    for stream in list(self.streams):
                        stream.stop()
                    continue
                # due now or before the next tick: no stream is ever silent past its interval
                upto = loop.time() + self.period
                for stream in [s for s in self.streams if s.silent_since(upto)]:
                    await stream.ping()
        finally:
            self.task = None


_SHUTDOWN_POLL = 0.5
_PING_WAIT = 1.0  # a client that does not read even a heartbeat holds the others back no longer
_open: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _OpenStreams] = weakref.WeakKeyDictionary()


def _open_streams() -> _OpenStreams:
    loop = asyncio.get_running_loop()
    streams = _open.get(loop)
    if streams is None:
        streams = _open[loop] = _OpenStreams()
    return streams


_RAW_HEADERS: dict[tuple[str, ...], list[tuple[bytes, bytes]]] = {}


class StreamResponse(Response):
    """A streamed body, a heartbeat before ``heartbeat`` silent seconds (0 = none), and the
    sender cancelled as soon as the client disconnects or the server shuts down.

    Per stream: the request's own task sends the body, one bare ``receive()`` waits for
    the disconnect (its done-callback cancels the sender), and the loop's
    :class:`_OpenStreams` sends the heartbeats and ends the streams at shutdown.
    """

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        heartbeat: float,
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        self.chunks = chunks
        self.heartbeat = heartbeat
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        key = (media_type, *(f"{k}: {v}" for k, v in headers.items()))
        cached = _RAW_HEADERS.get(key)
        if cached is None:
            self.init_headers(headers)
            if len(_RAW_HEADERS) < 64:
                _RAW_HEADERS[key] = list(self.raw_headers)
        else:
            self.raw_headers = list(cached)  # the same bytes for every stream, a list of its own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        sender = asyncio.current_task()
        assert sender is not None
        loop = asyncio.get_running_loop()
        self._send, self._receive, self._sender, self._loop = send, receive, sender, loop
        self._gone = self._done = self._busy = self._stopping = False
        self._held: bytes | None = None  # pushed: the chunk of a last event, until the end goes with it
        self._last = loop.time()
        self._listen()
        streams = _open_streams()
        streams.add(self)
        chunks: AsyncIterator[bytes] | None = None
        try:
            started = send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            frames = self.chunks
            if started is WRITTEN and type(frames) is Frames and hasattr(frames.stream, "listen"):
                await self._push(frames)
            else:
                await started
                chunks = aiter(frames)
                await self._pull(chunks)
            if not self._done:
                self._done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (self._gone or AppStatus.should_exit):
                raise
            # our own doing (the client left, or the server stops): the request ends
            # normally, unless someone else cancelled the task too
            if sender.uncancel() > 0:
                raise
            if not (self._gone or self._done):  # shutting down: end the body properly
                self._done = True
                await send({"type": "http.response.body", "body": self._held or b"", "more_body": False})
        finally:
            self._done = True
            self._listener.cancel()
            streams.streams.discard(self)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _pull(self, chunks: AsyncIterator[bytes]) -> None:
        """The body from an iterator: one send per chunk, each awaited."""
        send, loop = self._send, self._loop
        async for chunk in chunks:
            if self._done:
                continue  # the body has ended; the iterator ends too (it leaves its stream then)
            if type(chunk) is LastChunk:  # the end of the body goes with it
                self._done = True
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                continue
            self._busy = True
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self._busy = False
            self._last = loop.time()

    # Pushed: the stream's log hands this response each event as it is recorded, and the
    # chunk is written there and then (the server's send is done when called: WRITTEN).
    # The task sleeps until the log closes, or until a send could not be done at once
    # (the socket is backed up: it waits for the drain, then listens again from after
    # the last event written), or the client leaves (the task is cancelled).

    async def _push(self, frames: Frames) -> None:
        stream = frames.stream
        listenable = cast(_Listenable, stream)  # __call__ checked that it has ``listen``
        self._frames = frames
        self._seq = frames.after  # the last event taken
        self._pending: Awaitable[None] | None = None
        self._failure: BaseException | None = None
        async with stream.attach(frames.grace):
            while not self._done:
                self._woken: asyncio.Future[None] = self._loop.create_future()
                try:
                    listenable.listen(self._seq, self)
                except ReplayGone as exc:
                    self._done = True
                    await self._send({"type": "http.response.body", "body": frames.gone(exc, self._seq), "more_body": False})
                    return
                try:
                    await self._woken
                except BaseException:
                    listenable.unlisten(self)
                    pending, self._pending = self._pending, None
                    if inspect.iscoroutine(pending):
                        pending.close()  # never to be sent: the client left or the server stops
                    raise
                if self._failure is not None:
                    raise self._failure
                pending, self._pending = self._pending, None
                if pending is not None:  # the socket is backed up: this chunk waits for the drain
                    self._busy = True
                    try:
                        await pending
                    finally:
                        self._busy = False
                        self._last = self._loop.time()

    def deliver(self, batch: Batch) -> bool:
        """The log's ``Listener``: write ``batch``'s chunk now. A stream's last event
        (``Done``, ``Error``) is held for the end of the body, which follows it when the
        log closes: one write for both."""
        if self._done:
            return False
        try:
            chunk = self._frames.chunk(batch)
            self._seq = batch[-1][0]
            held, self._held = self._held, None
            if held:
                chunk = held + chunk
            if type(batch[-1][1]) in _LAST_EVENTS:
                self._held = chunk
                return True
            return not chunk or self._write(chunk, more=True)
        except Exception as exc:  # never into the generation that recorded the event
            self._failure = exc
            self._wake()
            return False

    def ended(self) -> None:
        """The log's ``Listener``: the stream has ended; so does the body."""
        if not self._done:
            held, self._held = self._held, None
            self._done = True
            try:
                self._write(held or b"", more=False)
            except Exception as exc:
                self._failure = exc
        self._wake()

    def _write(self, chunk: bytes, *, more: bool) -> bool:
        sent = self._send({"type": "http.response.body", "body": chunk, "more_body": more})
        self._last = self._loop.time()
        if sent is WRITTEN:
            return True
        self._pending = sent  # not sent yet: the task awaits it, then listens again
        self._wake()
        return False

    def _wake(self) -> None:
        if not self._woken.done():
            self._woken.set_result(None)

    # the disconnect: a bare receive(), no coroutine of ours around it; lmstream's own
    # server returns a future from receive(), which needs no task (ensure_future keeps it)

    def _listen(self) -> None:
        self._listener: asyncio.Future[Message] = asyncio.ensure_future(self._receive())
        self._listener.add_done_callback(self._received)

    def _received(self, listener: asyncio.Future[Message]) -> None:
        if listener.cancelled() or listener.exception() is not None or self._done:
            return
        if listener.result()["type"] == "http.disconnect":
            self._gone = True
            self._sender.cancel()
        else:
            self._listen()  # not ours to read: wait on

    # what the loop's _OpenStreams calls

    def silent_since(self, when: float) -> bool:
        """Due for a heartbeat: silent for ``heartbeat`` seconds at ``when``, and not sending."""
        return 0 < self.heartbeat <= when - self._last and not (self._busy or self._done)

    async def ping(self) -> None:
        self._busy = True
        try:
            async with asyncio.timeout(_PING_WAIT):
                await self._send({"type": "http.response.body", "body": _PING, "more_body": True})
        except Exception:  # a gone or stuck client: its own task sees to it
            pass
        finally:
            self._busy = False
            self._last = asyncio.get_running_loop().time()

    def stop(self) -> None:
        """The server shuts down: end this stream (with a complete body), once."""
        if not (self._done or self._stopping):
            self._stopping = True
            self._sender.cancel()


def stream_response(
    frames: AsyncIterable[bytes],
    *,
    heartbeat: float,
    media_type: str = "text/event-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no", **(headers or {})}
    return StreamResponse(
        frames,
        heartbeat=heartbeat if media_type.startswith("text/event-stream") else 0,
        media_type=media_type,
        headers=all_headers,
    )


async def wait_unless_disconnected(request: Request, stream: StreamHandle) -> Completion | None:
    """The whole answer for a non-streaming request; None (and cancelled) if the client left."""

    async def client_gone() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    async with stream.attach(0):
        finished = asyncio.ensure_future(stream.wait())
        gone = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not finished.done():
            finished.cancel()
            return None
        return finished.result()


IGNORED_HEADER = "lmstream-ignored"


def ignored_header(stream: RunningStream) -> dict[str, str]:
    """``lmstream-ignored: a, b``: the request fields lmstream left unused because
    ignoring them is a valid outcome (``capabilities.admit``, ``dialects/fields.py``)."""
    ignored = stream.request.ignored
    return {IGNORED_HEADER: ", ".join(ignored)} if ignored else {}


class WireEncoder(Protocol):
    """A dialect's per-stream encoder: internal events to its wire frames."""

    def encode(self, event: Event) -> Iterable[Frame]: ...


async def answer(
    request: Request,
    stream: StreamHandle,
    *,
    encoder: WireEncoder | None,
    render: Callable[[Completion], Any],
    error_body: Callable[[Any], dict[str, Any]],
    heartbeat: float,
    media_type: str = "text/event-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    """How the client dialects (OpenAI, Anthropic, Ollama) answer a started generation.

    With an ``encoder`` it streams (a client that leaves cancels at once); without, it
    waits for the whole answer, cancelling if the client leaves, and renders it or the
    error it ended with. ``headers`` go on the 200 either way.
    """
    if encoder is not None:
        wire = encoder

        def encode(seq: int, event: Event) -> Iterable[Frame]:
            return wire.encode(event)

        frames = follow_frames(stream, encode, grace=0)
        return stream_response(frames, heartbeat=heartbeat, media_type=media_type, headers=headers)
    completion = await wait_unless_disconnected(request, stream)
    if completion is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    if completion.error is not None:
        error = error_from_code(completion.error.code, completion.error.message)
        return JSON(error_body(error), status_code=error.status_code)
    return JSON(render(completion), headers=headers)
