"""The load generator's HTTP/SSE parsers, fed the same bytes split at every offset."""

from __future__ import annotations

from bench.wire import ChunkedDecoder, ResponseHead, SSEParser

STREAM = (
    b": ping\n\n"
    b'data: {"text":"caf\xc3\xa9"}\n\n'
    b"event: token\r\nid: 7\r\ndata: one\r\ndata: two\r\n\r\n"
    b"data: [DONE]\n\n"
)
EVENTS = [(b"", b'{"text":"caf\xc3\xa9"}'), (b"token", b"one\ntwo"), (b"", b"[DONE]")]


def _feed_split(data: bytes, at: int) -> tuple[list[tuple[bytes, bytes]], SSEParser]:
    parser = SSEParser()
    return parser.feed(data[:at]) + parser.feed(data[at:]), parser


def test_sse_events_survive_a_split_at_every_byte() -> None:
    for at in range(len(STREAM) + 1):
        events, parser = _feed_split(STREAM, at)
        assert events == EVENTS, at
        assert parser.comments == 1
        assert parser.last_id == b"7"


def test_sse_byte_by_byte() -> None:
    parser = SSEParser()
    events = [e for i in range(len(STREAM)) for e in parser.feed(STREAM[i : i + 1])]
    assert events == EVENTS


def test_sse_event_without_data_is_not_dispatched() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: nothing\n\n") == []
    assert parser.feed(b"data: x\n\n") == [(b"", b"x")]


def _chunked(payload: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(payload), size):
        piece = payload[i : i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


def test_chunked_decoder_at_every_split() -> None:
    body = _chunked(STREAM, 13)
    for at in range(len(body) + 1):
        decoder = ChunkedDecoder()
        out = decoder.feed(body[:at]) + decoder.feed(body[at:])
        assert out == STREAM, at
        assert decoder.done


def test_response_head_then_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    for at in range(len(raw) + 1):
        head = ResponseHead()
        first = head.feed(raw[:at])
        rest = head.feed(raw[at:]) if first is None else first + raw[at:]
        assert rest == b"5\r\nhello\r\n", at
        assert head.status == 200
        assert head.chunked
