"""The request's headers, indexed once (``http/headers.py``) and the direct routes'
request (``http/direct.py``): the same answers as Starlette's own ``Headers`` and
``Request.body``, for every lookup a route makes."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from lmstream.http.direct import DirectRequest
from lmstream.http.headers import IndexedHeaders, request_headers

RAW = [
    (b"host", b"127.0.0.1:8000"),
    (b"authorization", b"Bearer first"),
    (b"accept", b"text/event-stream"),
    (b"authorization", b"Bearer second"),
    (b"x-latin", "caf\u00e9".encode("latin-1")),
]


def _scope(raw: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...] = RAW) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": raw}


@pytest.mark.parametrize(
    "name", ["host", "Host", "AUTHORIZATION", "accept", "x-latin", "origin", "content-length", "X-Api-Key"]
)
def test_every_lookup_answers_as_starlettes_headers(name: str) -> None:
    theirs, ours = Headers(raw=list(RAW)), IndexedHeaders(list(RAW))
    assert ours.get(name) == theirs.get(name)  # the first of repeated headers, as Starlette's walk finds it
    assert ours.get(name, "none") == theirs.get(name, "none")
    assert (name in ours) == (name in theirs)
    if name in theirs:
        assert ours[name] == theirs[name]
    else:
        with pytest.raises(KeyError):
            ours[name]


def test_the_rest_is_starlettes_on_the_same_list() -> None:
    ours = IndexedHeaders(list(RAW))
    assert ours.getlist("authorization") == ["Bearer first", "Bearer second"]
    assert ours.raw == RAW and len(ours) == len(RAW) and ours == Headers(raw=list(RAW))
    assert 42 not in ours  # not a name: absent, as a dict would say


def test_one_index_per_request_until_the_scope_gets_other_headers() -> None:
    scope = _scope(tuple(RAW))  # a server may give a tuple: a list is kept, as Starlette does
    first = request_headers(scope)
    assert request_headers(scope) is first and type(scope["headers"]) is list
    Headers(scope=scope)  # Starlette's own puts a copy of the list in the scope
    second = request_headers(scope)
    assert second is not first and second.get("authorization") == "Bearer first"
    scope["headers"] = [(b"authorization", b"Bearer replaced")]  # middleware replaced them
    assert request_headers(scope).get("authorization") == "Bearer replaced"
    assert request_headers(scope).get("host") is None


def _receiving(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


async def test_the_body_read_in_pieces_is_whole_and_kept() -> None:
    receive = _receiving(
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    )
    request = DirectRequest(_scope(), receive)
    assert await request.body() == b'{"a": 1}'
    assert await request.body() == b'{"a": 1}'  # kept: not read twice
    assert await request.json() == {"a": 1}
    assert [chunk async for chunk in request.stream()] == [b'{"a": 1}', b""]  # Starlette's, on what was read
    assert request.headers.get("accept") == "text/event-stream"


async def test_a_client_that_leaves_during_the_body_is_a_disconnect() -> None:
    receive = _receiving({"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"})
    request = DirectRequest(_scope(), receive)
    with pytest.raises(ClientDisconnect):
        await request.body()
    assert request._is_disconnected


async def test_a_body_already_streamed_cannot_be_read_again() -> None:
    request = DirectRequest(_scope(), _receiving({"type": "http.request", "body": b"x", "more_body": False}))
    assert [chunk async for chunk in request.stream()] == [b"x", b""]
    with pytest.raises(RuntimeError, match="Stream consumed"):
        await request.body()
