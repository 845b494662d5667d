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


def test_sse_one_event_per_read_decodes_as_the_general_path_does() -> None:
    # a read that is one whole `data:` event takes a shorter path; around it, what the
    # general path keeps between reads (a BOM, an event name, a CR, a half line) still holds
    reads = [
        b"\xef\xbb\xbfdata: first\n\n",
        b"data: plain\n\n",
        b"event: delta\n",
        b"data: named\n\n",
        b"data: after the name\n\n",
        b"data: two\ndata: lines\n\n",
        b"data:no space\n\n",
        b"data: ends in cr\r\r",
        b"\ndata: after cr\n\n",
        b"data: half",
        b" a line\n\n",
        b"data: \n\n",
        b": comment\n\n",
        b"data: last\n\n",
    ]
    expected = [
        ("", b"first"), ("", b"plain"), ("delta", b"named"), ("", b"after the name"), ("", b"two\nlines"),
        ("", b"no space"), ("", b"ends in cr"), ("", b"after cr"), ("", b"half a line"), ("", b""), ("", b"last"),
    ]  # fmt: skip
    assert decode(reads) == expected
    assert decode([bytes([b]) for b in b"".join(reads)]) == expected


def test_sse_several_whole_events_in_one_read_decode_as_the_general_path_does() -> None:
    # a read of whole one-line `data:` events (a stream's last ones) takes the shorter
    # path too; anything else in the read (a comment, a two-line event, a blank line too
    # many) sends the whole read down the general path
    reads = [
        b"data: a\n\ndata: b\n\n",
        b"event: named\n",
        b"data: c\n\ndata: d\n\ndata: \n\n",
        b"data: e\n\n: comment\n\ndata: f\n\n",
        b"data: g\ndata: h\n\ndata: i\n\n",
        b"data: j\n\n\n\ndata: k\n\n",
        b"data: l\r\n\r\ndata: m\n\n",
        b"data: [DONE]\n\n",
    ]
    expected = [
        ("", b"a"), ("", b"b"), ("named", b"c"), ("", b"d"), ("", b""), ("", b"e"), ("", b"f"), ("", b"g\nh"),
        ("", b"i"), ("", b"j"), ("", b"k"), ("", b"l"), ("", b"m"), ("", b"[DONE]"),
    ]  # fmt: skip
    assert decode(reads) == expected
    assert decode([bytes([b]) for b in b"".join(reads)]) == expected
