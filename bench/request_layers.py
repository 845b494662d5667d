"""What each layer of a relayed chat request costs inside lmstream, one request at a time.

``python -m bench.request_layers`` starts the fast fake upstream and lmstream relaying it
(this module is lmstream's launcher: ``serve`` runs the CLI with the probes below), sends
``--requests`` streaming chat requests one after another (each on a new connection, as the
load generator does, head and body in one write), and prints the median time between
consecutive probes of every request whose probes all fired, dropping the first 20 (warm-up):

* the ASGI layers, outermost first: ``App``, ``ServerErrors``, ``AccessLog``,
  ``RequestGuard``, ``DirectRoutes``, then the route's ``endpoint`` (auth);
* the body read (``Request.body``: called, returned), the dialect's parsing
  (``openai.parse_request`` returned), ``start_stream`` (admission), ``StreamHub.start``;
* the upstream backend: ``open`` called, the request written (``Connection.send``), ``open``
  returned (the upstream's status line and headers arrived: ``status_wait``);
* the response: ``answer`` called, ``StreamResponse`` called, its head written, the first
  token's bytes written.

With one request at a time nothing else competes for the event loop, so each figure is the
CPU that step costs on the request's own path (the upstream's row also holds the upstream's
own time and the wake-ups between the processes). Figures in BENCHMARKS.md ("The misses,
and why"); ``bench.ttft_path`` gives the same path under 100 clients, in fewer legs.
"""

from __future__ import annotations

import argparse
import contextvars
import itertools
import os
import statistics
import sys
import time
from typing import Any

__all__ = ["main"]

PROBES = (
    "app", "ServerErrors", "AccessLog", "RequestGuard", "DirectRoutes", "endpoint auth",
    "body read: called", "body read: returned", "parsed", "start_stream", "hub.start",
    "backend.open", "upstream request written", "upstream head in, open returned",
    "answer", "StreamResponse", "response head out", "first token out",
)  # fmt: skip
WARM_UP = 20


def _install_probes(records: list[dict[str, float]]) -> None:
    import lmstream.backends.upstream as upstream
    import lmstream.dialects.openai as dialect
    import lmstream.http.accesslog as accesslog
    import lmstream.http.application as application
    import lmstream.http.direct as direct
    import lmstream.http.endpoint as endpoint
    import lmstream.http.guard as guard
    import lmstream.http.openai as routes
    import lmstream.http.streaming as streaming
    import lmstream.httpclient.connection as connection
    import lmstream.hub.hub as hub

    now = time.perf_counter
    current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("request_layers", default=None)

    def mark(name: str) -> None:
        record = current.get()
        if record is not None and name not in record:
            record[name] = now()

    def entry(owner: Any, attribute: str, name: str) -> None:
        inner = getattr(owner, attribute)

        async def probe(*args: Any, **kwargs: Any) -> Any:
            mark(name)
            return await inner(*args, **kwargs)

        setattr(owner, attribute, probe)

    app_call = application.App.__call__

    async def probe_app(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            record = {"app": now()}
            current.set(record)
            records.append(record)
        return await app_call(self, scope, receive, send)

    application.App.__call__ = probe_app  # type: ignore[method-assign]
    entry(application.ServerErrors, "__call__", "ServerErrors")
    entry(accesslog.AccessLog, "__call__", "AccessLog")
    entry(guard.RequestGuard, "__call__", "RequestGuard")
    entry(direct.DirectRoutes, "__call__", "DirectRoutes")
    entry(endpoint, "authenticate", "endpoint auth")  # the wrapper calls it by its module name

    body = direct.DirectRequest.body  # the streaming routes' request (DirectRoutes)

    async def probe_body(self: Any) -> bytes:
        mark("body read: called")
        content = await body(self)
        mark("body read: returned")
        return content

    direct.DirectRequest.body = probe_body  # type: ignore[method-assign]

    parse = dialect.parse_request

    def probe_parse(raw: bytes) -> Any:
        parsed = parse(raw)
        mark("parsed")
        return parsed

    dialect.parse_request = probe_parse  # type: ignore[assignment]  # the route looks it up on the module at each call
    entry(routes, "start_stream", "start_stream")
    entry(hub.StreamHub, "start", "hub.start")

    open_ = upstream.UpstreamBackend.open

    async def probe_open(self: Any, request: Any) -> Any:
        mark("backend.open")
        stream = await open_(self, request)
        mark("upstream head in, open returned")
        return stream

    upstream.UpstreamBackend.open = probe_open  # type: ignore[method-assign]

    send = connection.Connection.send

    def probe_send(self: Any, data: bytes, *rest: Any) -> Any:
        mark("upstream request written")
        return send(self, data, *rest)

    connection.Connection.send = probe_send  # type: ignore[method-assign]
    entry(routes, "answer", "answer")

    respond = streaming.StreamResponse.__call__

    async def probe_response(self: Any, scope: Any, receive: Any, send: Any) -> None:
        mark("StreamResponse")

        def probe_out(message: Any) -> Any:  # the server's awaitable handed through (lmstream/asgi.py)
            if message["type"] == "http.response.start":
                mark("response head out")
            elif b'"content":"' in message.get("body", b"") and b'"role"' not in message.get("body", b""):
                mark("first token out")
            return send(message)

        return await respond(self, scope, receive, probe_out)

    streaming.StreamResponse.__call__ = probe_response  # type: ignore[method-assign]


def _rows(records: list[dict[str, float]]) -> tuple[int, list[list[Any]]]:
    complete = [r for r in records[WARM_UP:] if all(p in r for p in PROBES)]
    rows = []
    for a, b in itertools.pairwise(PROBES):
        if complete:
            rows.append([f"{a} -> {b}", round(statistics.median(1e6 * (r[b] - r[a]) for r in complete))])
    if complete:
        total = statistics.median(1e6 * (r[PROBES[-1]] - r[PROBES[0]]) for r in complete)
        upstream = statistics.median(
            1e6 * (r["upstream head in, open returned"] - r["upstream request written"]) for r in complete
        )
        rows.append(["app -> first token out, in all", round(total)])
        rows.append(["the same without the upstream's row", round(total - upstream)])
    return len(complete), rows


async def _one(port: int, request: bytes) -> None:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = b""
    while chunk := await reader.read(65536):
        data += chunk
    writer.close()
    if b"[DONE]" not in data:
        raise RuntimeError(f"the stream did not end with [DONE]: {data[-300:]!r}")


def main(argv: list[str] | None = None) -> None:
    import json
    import tempfile

    import uvloop

    from bench.procs import running
    from bench.report import print_table
    from bench.scenarios.common import chat_body
    from bench.targets import start_fake_upstream, start_lmstream

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args(argv)

    fast = start_fake_upstream(tps=0, tokens=2000, name="fake-fast")
    report = os.path.join(tempfile.mkdtemp(prefix="request-layers-"), "records.json")
    with running([fast]):
        relayed = [{"name": "fast", "backend": "openai", "url": fast.url + "/v1", "upstream_model": "fast"}]
        server = start_lmstream(relayed, name="lmstream-request-layers", launcher="bench.request_layers", env={"REQUEST_LAYERS_REPORT": report})
        with running([server]):
            port = int(server.url.rsplit(":", 1)[1])
            body = chat_body("fast", "request layers", max_tokens=4).encode()
            head = (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Accept: text/event-stream\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
            )

            async def load() -> None:
                for _ in range(args.requests):
                    await _one(port, head.encode() + body)

            uvloop.run(load())
    with open(report) as f:
        records = json.load(f)
    complete, rows = _rows(records)
    print_table(
        f"one request at a time: {complete} of {len(records)} requests with every probe, µs (median)",
        ["from -> to", "µs"],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        from bench.ttft_path import serve_with_probes

        serve_with_probes(_install_probes, os.environ["REQUEST_LAYERS_REPORT"])
    else:
        main()
