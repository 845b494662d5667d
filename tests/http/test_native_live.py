"""The native API against a real server process: progressive tokens, resume, cancel."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from httpx_sse import connect_sse

from tests.support import LiveServer, scripted


def test_tokens_arrive_while_generating(server_factory: Callable[..., LiveServer]) -> None:
    server = server_factory([scripted(tokens_per_second=40)])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with connect_sse(client, "POST", "/v1/streams", json={"prompt": "tell me"}, headers={"Accept": "text/event-stream"}) as source:
            names = []
            first_id = ""
            for sse in source.iter_sse():
                names.append(sse.event)
                if sse.event == "token" and names.count("token") == 2:
                    # the stream is still running on the server while we read token 2
                    state = client.get(f"/v1/streams/{first_id}").json()
                    assert state["state"] == "running"
                if sse.event == "start":
                    first_id = sse.json()["id"]
    assert names[0] == "start" and names[-1] == "done"
