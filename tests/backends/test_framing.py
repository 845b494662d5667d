"""Byte-level framing of upstream bodies: the same frames whatever the reads' sizes."""

from __future__ import annotations

import pytest

from lmstream.backends.framing import NdjsonDecoder, SSEDecoder
from lmstream.errors import UpstreamError

# every line ending the event-stream format allows, a BOM, comments, multi-line data,
# named events, fields without a space, ids and retries (skipped), and UTF-8 text
STREAM = (
    "\ufeff: hello\r\n\r\n"
    'data: {"a": "Grüße 🎉"}\r\n\r\n'
    "event: message_delta\ndata: one\ndata:two\n\n"
    "id: 7\rretry: 10\rdata: cr only\r\r"
    "data: 日本\r\n\n"
    "event: skipped-without-data\n\n"
    "data: last\n\n"
).encode()
EXPECTED = [
    ("", '{"a": "Grüße 🎉"}'.encode()),
    ("message_delta", b"one\ntwo"),
    ("", b"cr only"),
    ("", "日本".encode()),
    ("", b"last"),
]


def decode(pieces: list[bytes]) -> list[tuple[str, bytes]]:
    decoder = SSEDecoder()
    return [frame for piece in pieces for frame in decoder.feed(piece)]


def test_sse_whole() -> None:
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_sse_split_at_every_byte(cut: int) -> None:
    assert decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_sse_one_byte_at_a_time() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_sse_refuses_an_endless_line() -> None:
    decoder = SSEDecoder(max_frame=16)
    with pytest.raises(UpstreamError, match="longer than 16 bytes"):
        decoder.feed(b"data: " + b"x" * 32)


def test_ndjson_one_byte_at_a_time() -> None:
    data = '{"a":"é€😀"}\r\n\n{"b":1}\n{"c":2}'.encode()
    decoder = NdjsonDecoder()
    lines = [line for i in range(len(data)) for line in decoder.feed(data[i : i + 1])] + decoder.flush()
    assert lines == ['{"a":"é€😀"}', '{"b":1}', '{"c":2}']
