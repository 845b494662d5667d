"""Where a relayed stream's time to first token goes inside lmstream.

``python -m bench.ttft_path`` starts the paced fake upstream and lmstream relaying it
(this module is lmstream's launcher: ``serve`` runs the CLI with the probes below), then
the ``overhead`` scenario's ``single`` and ``c100`` loads, and prints, per phase, the
median and p90 of each leg of every request's first token, timed inside the server:

* ``arrive -> app``: the request's bytes reached the protocol; the app is called (a
  task is made for it: one event-loop turn);
* ``app -> body``: the app's steps before the body (middleware, routing, the key) and
  the body read (the load generator writes head and body in one write, so the body is
  there; from a client that writes them in two, as httpx does, the second segment
  arrives while these steps run);
* ``body -> hub``: the dialect's parsing and validation, admission;
* ``hub -> upstream``: pre-processors, planners, the upstream request built and written;
* ``upstream -> its head``: the upstream's own time, until lmstream reads its response
  head (with the role chunk the fake upstream writes with it);
* ``head -> open() returns``: the request's task wakes (the upstream backend waits for
  the status before anything is sent to the client);
* ``open() -> hub.start returns``: the generation made, ``Started`` recorded, its task made;
* ``hub.start -> response start``: the dialect's response made and started;
* ``response start -> first write``: the head and the first chunk (the role) written;
* ``first write -> token read``: the generation's task runs its first step (the
  upstream's role chunk), then the loop reads the first token's bytes, which the
  upstream wrote right after its head;
* ``token read -> token written``: parsed, through the hub and written to the client.

"lmstream's own share" is the first token's time in the server less the upstream's own
leg. (Before stop 29 the upstream's leg ran until the token's bytes were read, so it
counted the five legs after the head, lmstream's own steps, as the upstream's.)

``--status-wait S`` sets the upstream model's ``status_wait``: ``0`` makes ``open()``
return before the status, so the generation and the response are made while the
upstream works (the status is then checked inside the stream).

The probes wrap functions of the running server (the protocol's ``data_received``,
``App.__call__``, ``DirectRequest.body``, ``StreamHub.start``, ``UpstreamBackend.open``,
the exchange's ``_write``, the HTTP client's ``Connection``); they add a few
microseconds per request. Figures in BENCHMARKS.md ("The misses, and why").
"""

from __future__ import annotations

import contextvars
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["main", "serve_with_probes"]

LEGS = (
    ("arrive -> app", "arrive", "app"),
    ("app -> body", "app", "body"),
    ("body -> hub", "body", "hub"),
    ("hub -> upstream", "hub", "sent"),
    ("upstream -> its head", "sent", "head_in"),
    ("head -> open() returns", "head_in", "opened"),
    ("open() -> hub.start returns", "opened", "started"),
    ("hub.start -> response start", "started", "response"),
    ("response start -> first write", "response", "written"),
    ("first write -> token read", "written", "token_in"),
    ("token read -> token written", "token_in", "token_out"),
)


_TOKEN = re.compile(rb'"content":\s*"[^"]')  # a chunk with text (not the role's empty one)


def _is_token(data: bytes) -> bool:
    return _TOKEN.search(data) is not None


def _install_probes(records: list[dict[str, float]]) -> None:
    import lmstream.backends.upstream as upstream
    import lmstream.http.application as application
    import lmstream.http.direct as direct
    import lmstream.httpclient.connection as connection
    import lmstream.hub.hub as hub
    import lmstream.server.exchange as exchange
    import lmstream.server.protocol as protocol

    now = time.perf_counter
    current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("ttft_path", default=None)
    arrived = [0.0]

    def mark(name: str) -> None:
        record = current.get()
        if record is not None and name not in record:
            record[name] = now()

    data_received = protocol.HttpProtocol.data_received

    def probe_data_received(self: Any, data: bytes) -> None:
        if data.startswith(b"POST "):
            arrived[0] = now()
        data_received(self, data)

    app_call = application.App.__call__

    async def probe_app(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app_call(self, scope, receive, send)
        record = {"arrive": arrived[0], "app": now()}
        current.set(record)
        records.append(record)

        def probe_send(message: Any) -> Any:  # the server's awaitable handed through (lmstream/asgi.py)
            if message["type"] == "http.response.start" and "response" not in record:
                record["response"] = now()
            if "token_out" not in record and message["type"] == "http.response.body" and _is_token(message.get("body", b"")):
                record["token_out"] = now()
            return send(message)

        return await app_call(self, scope, receive, probe_send)

    body = direct.DirectRequest.body  # the streaming routes' request (DirectRoutes)

    async def probe_body(self: Any) -> bytes:
        content = await body(self)
        mark("body")
        return content

    start = hub.StreamHub.start

    async def probe_start(self: Any, request: Any, **kw: Any) -> Any:
        mark("hub")
        started = await start(self, request, **kw)
        mark("started")
        return started

    upstream_open = upstream.UpstreamBackend.open

    async def probe_open(self: Any, request: Any) -> Any:
        opened = await upstream_open(self, request)
        mark("opened")
        return opened

    exchange_write = exchange.Exchange._write

    def probe_write(self: Any, message: Any) -> None:
        exchange_write(self, message)
        if message["type"] == "http.response.body":
            mark("written")

    send = connection.Connection.send

    def probe_send_upstream(self: Any, data: bytes, *rest: Any) -> Any:
        record = current.get()
        self.ttft_record = record if record is not None and "sent" not in record else None
        mark("sent")
        return send(self, data, *rest)

    upstream_received = connection.Connection.data_received

    def probe_upstream_received(self: Any, data: bytes) -> None:
        record = getattr(self, "ttft_record", None)
        if record is not None and "head_in" not in record:
            record["head_in"] = now()
        if record is not None and "token_in" not in record and _is_token(data):
            record["token_in"] = now()
        upstream_received(self, data)

    protocol.HttpProtocol.data_received = probe_data_received  # type: ignore[method-assign]
    application.App.__call__ = probe_app  # type: ignore[method-assign]
    direct.DirectRequest.body = probe_body  # type: ignore[method-assign]
    hub.StreamHub.start = probe_start  # type: ignore[method-assign]
    upstream.UpstreamBackend.open = probe_open  # type: ignore[method-assign]
    exchange.Exchange._write = probe_write  # type: ignore[method-assign]
    connection.Connection.send = probe_send_upstream  # type: ignore[method-assign]
    connection.Connection.data_received = probe_upstream_received  # type: ignore[method-assign]


def serve_with_probes(install: Callable[[list[dict[str, float]]], None], report_to: str) -> None:
    """lmstream's CLI with ``install``'s probes in; the records go to ``report_to`` at exit
    (the launcher of this module and of ``bench.request_layers``)."""
    import atexit
    import json

    records: list[dict[str, float]] = []
    install(records)
    atexit.register(lambda: open(report_to, "w").write(json.dumps(records)))
    from lmstream.cli import main as cli

    cli()  # argv: serve --config ...


def _legs(records: list[dict[str, float]]) -> list[list[Any]]:
    complete = [r for r in records if all(a in r and b in r for _, a, b in LEGS)]
    rows = []
    for name, a, b in LEGS:
        ms = sorted(1000 * (r[b] - r[a]) for r in complete)
        rows.append([name, round(statistics.median(ms), 3), round(ms[int(0.9 * (len(ms) - 1))], 3)] if ms else [name, None, None])
    total = sorted(1000 * (r["token_out"] - r["arrive"]) for r in complete)
    own = sorted(1000 * ((r["token_out"] - r["arrive"]) - (r["head_in"] - r["sent"])) for r in complete)  # less the upstream's leg
    rows.append(["lmstream's own share (all but the upstream)", round(statistics.median(own), 3), round(own[int(0.9 * (len(own) - 1))], 3)])
    rows.append(["first token, in the server", round(statistics.median(total), 3), round(total[int(0.9 * (len(total) - 1))], 3)])
    return rows


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    import tempfile

    from bench.fake_upstream import expected_text
    from bench.loadgen import LoadSpec
    from bench.procs import running
    from bench.report import print_table
    from bench.scenarios.common import Measured, Target, chat_body, measure
    from bench.targets import start_fake_upstream, start_lmstream

    parser = argparse.ArgumentParser(prog="python -m bench.ttft_path", description=__doc__.splitlines()[0])
    parser.add_argument("--status-wait", type=float, default=None, help="the upstream model's status_wait, seconds")
    options = parser.parse_args(argv)
    model_options = {} if options.status_wait is None else {"options": {"status_wait": options.status_wait}}
    paced = start_fake_upstream(tps=20.0, tokens=2000, name="fake-paced")
    with running([paced]):
        for phase, clients, per_client, ramp in (("single", 1, 30, 0.0), ("c100", 100, 2, 2.0)):
            report = os.path.join(tempfile.mkdtemp(prefix="ttft-path-"), "records.json")
            relayed = [{"name": "paced", "backend": "openai", "url": paced.url + "/v1", "upstream_model": "paced", **model_options}]
            server = start_lmstream(relayed, name="lmstream-ttft-path", launcher="bench.ttft_path", env={"TTFT_PATH_REPORT": report})
            with running([server]):
                port = int(server.url.rsplit(":", 1)[1])
                spec = LoadSpec(
                    port=port, path="/v1/chat/completions", body=chat_body("paced", f"ttft path {phase} __I__", max_tokens=64),
                    headers={}, clients=clients, streams_per_client=per_client, ramp_s=ramp,
                    expect_text=expected_text(64), timeout_s=300,
                )  # fmt: skip
                measure(spec, Target("lmstream", port, server), paced, Measured())
            with open(report) as f:
                records = json.load(f)
            title = f"{phase}: {clients} client(s), {len(records)} requests, ms inside lmstream"
            print_table(title, ["leg", "p50", "p90"], _legs(records))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_with_probes(_install_probes, os.environ["TTFT_PATH_REPORT"])
    else:
        main()
