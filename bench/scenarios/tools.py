"""Scenario 5, server-side tools: what a tool round trip costs, and how many progress
events one stream carries per second.

1. In process (no HTTP): ``run_tool`` per call for an async tool, and a sync tool three
   ways side by side: lmstream's tool threads (``tools/threads.py``: reused daemon
   threads, a new one when none is idle), a new daemon thread per call, and
   ``asyncio.to_thread`` (the default executor).
2. Over HTTP against ``lmstream serve`` (one client, keep-alive, one call at a time,
   the targets alternated ``rounds`` times): ``GET /v1/tools`` (the floor: routing,
   auth, JSON, no tool run), the non-streaming ``POST /v1/tools/noop`` (async) and
   ``noop_sync`` (thread), the streaming ``POST /v1/tools/noop/stream`` read to its end,
   and the same tool through the MCP SDK's client on ``/mcp``. "added" = p50 minus the
   floor's p50. Inside a native stream: ``POST /v1/streams`` read to its end on a
   scripted model that answers at once, against the same request with ``"tools":
   ["noop"]`` on a scripted model that calls ``noop`` first — the tool step between two
   model rounds (the call, the run, its events, the second round) is the difference.
3. Progress events per second one stream carries: the ``flood`` tool reports ``N``
   updates as fast as it can (unthrottled: ``tool_progress_interval = 0``), a raw
   client (``bench.wire``'s parsers) counts them as they arrive; server CPU per 1,000
   events from ``/proc``. The same flood with the default throttle (0.1 s) shows what a
   client gets by default.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from bench.procs import Server, running
from bench.report import pct, print_table
from bench.scenarios import Options
from bench.targets import start_lmstream
from bench.wire import ChunkedDecoder, ResponseHead, SSEParser

__all__ = ["NAME", "TITLE", "run"]

NAME = "tools"
TITLE = "Server-side tools: round-trip overhead and progress events per second"
TOOLS = [{"function": f"bench.tool_samples:{name}"} for name in ("noop", "noop_sync", "flood")]
MODELS = [
    {"name": "plain", "backend": "scripted", "options": {"text": "ok"}},
    {"name": "caller", "backend": "scripted",
     "options": {"text": "ok", "tool_calls": [{"name": "noop", "arguments": {}}], "tool_answer": "ok"}},
]  # fmt: skip
STREAM_PLAIN = "POST /v1/streams, answer at once"
STREAM_TOOL = "POST /v1/streams, a noop tool step first"


# 1. In process ----------------------------------------------------------------------------


class _ToThread:
    """``noop_sync`` on the default executor instead of lmstream's tool threads."""

    name = "noop_to_thread"
    description = ""
    input_schema: Mapping[str, Any] = {"type": "object"}
    timeout = None

    async def run(self, arguments: Mapping[str, Any], context: Any) -> Any:
        from bench.tool_samples import noop_sync

        return await asyncio.to_thread(noop_sync.function)


class _NewThread(_ToThread):
    """``noop_sync`` on a new daemon thread per call."""

    name = "noop_new_thread"

    async def run(self, arguments: Mapping[str, Any], context: Any) -> Any:
        import threading

        from bench.tool_samples import noop_sync

        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def target() -> None:
            value = noop_sync.function()
            loop.call_soon_threadsafe(future.set_result, value)

        threading.Thread(target=target, daemon=True).start()
        return await future


async def _per_call_us(tool: Any, calls: int) -> float:
    from lmstream.tools import run_tool

    for _ in range(20):  # warm up
        await run_tool(tool, {}, lambda e: None, call_id="w")
    started = time.perf_counter()
    for _ in range(calls):
        await run_tool(tool, {}, lambda e: None, call_id="c")
    return (time.perf_counter() - started) / calls * 1e6


async def _in_process(calls: int, flood_n: int) -> dict[str, Any]:
    from bench.tool_samples import flood, noop, noop_sync
    from lmstream.hub import MemoryLog
    from lmstream.tools import RunOptions, run_tool
    from lmstream.tools.wire import RunEncoder

    out: dict[str, Any] = {"calls": calls}
    variants = (
        ("async", noop),
        ("sync, lmstream tool threads", noop_sync),
        ("sync, new thread per call", _NewThread()),
        ("sync, asyncio.to_thread", _ToThread()),
    )
    for label, tool in variants:
        out[label] = round(await _per_call_us(tool, calls), 1)
    log = MemoryLog(flood_n * 2)  # the hub's log, as a run on the hub records into it
    encoder = RunEncoder("gen_bench", created=0)
    frames = 0

    def emit(event: Any) -> None:
        nonlocal frames
        seq = log.append(event)
        for frame in encoder.encode(seq, event):
            frame.encode()
            frames += 1

    started = time.perf_counter()
    await run_tool(flood, {"n": flood_n}, emit, call_id="gen_bench", options=RunOptions(progress_interval=0))
    out["progress_events_per_s_encoded"] = round(frames / (time.perf_counter() - started))
    return out


# 2. Round trips over HTTP -----------------------------------------------------------------


def _timed(fn: Callable[[], None], calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def _http_calls(server: Server) -> dict[str, Callable[[], None]]:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json"}

    def request(method: str, path: str, body: bytes | None = None, *, sse: bool = False) -> Callable[[], None]:
        def call() -> None:
            conn.request(method, path, body=body, headers={**headers, "Accept": "text/event-stream"} if sse else headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")

        return call

    empty = orjson.dumps({"arguments": {}})
    return {
        "GET /v1/tools (floor)": request("GET", "/v1/tools"),
        "POST /v1/tools/noop": request("POST", "/v1/tools/noop", empty),
        "POST /v1/tools/noop_sync": request("POST", "/v1/tools/noop_sync", empty),
        "POST /v1/tools/noop/stream": request("POST", "/v1/tools/noop/stream", empty),
        STREAM_PLAIN: request("POST", "/v1/streams", orjson.dumps({"model": "plain", "prompt": "x"}), sse=True),
        STREAM_TOOL: request(
            "POST", "/v1/streams", orjson.dumps({"model": "caller", "prompt": "x", "tools": ["noop"]}), sse=True
        ),
    }


async def _mcp_times(server: Server, calls: int) -> list[float]:
    from mcp import Client

    async with Client(server.url + "/mcp") as client:
        for _ in range(10):
            await client.call_tool("noop", {})
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("noop", {})
            times.append(time.perf_counter() - started)
            if result.is_error:
                raise RuntimeError(f"MCP noop failed: {result}")
        return times


def _round_trips(server: Server, calls: int, rounds: int) -> dict[str, Any]:
    targets = _http_calls(server)
    samples: dict[str, list[float]] = {name: [] for name in [*targets, "MCP call_tool noop"]}
    for fn in targets.values():  # warm up
        _timed(fn, 10)
    for _ in range(rounds):
        for name, fn in targets.items():
            samples[name] += _timed(fn, calls)
        samples["MCP call_tool noop"] += asyncio.run(_mcp_times(server, calls))
    floor = pct(samples["GET /v1/tools (floor)"], 50) or 0.0
    out: dict[str, Any] = {}
    for name, values in samples.items():
        p50, p90 = pct(values, 50) or 0.0, pct(values, 90) or 0.0
        out[name] = {"p50_ms": round(p50 * 1000, 3), "p90_ms": round(p90 * 1000, 3), "added_p50_ms": round((p50 - floor) * 1000, 3), "n": len(values)}
    return out


# 3. Progress events per second --------------------------------------------------------------


def _flood(server: Server, n: int) -> dict[str, Any]:
    host, port = server.url.removeprefix("http://").split(":")
    body = orjson.dumps({"arguments": {"n": n}})
    request = (
        f"POST /v1/tools/flood/stream HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    head, chunks, sse = ResponseHead(), ChunkedDecoder(), SSEParser()
    progress = 0
    first: float | None = None
    cpu_before = server.cpu()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        started = time.perf_counter()
        body_started = False
        while True:
            data = sock.recv(262144)
            if not data:
                raise RuntimeError("the server closed the stream early")
            if not body_started:
                rest = head.feed(data)
                if rest is None:
                    continue
                body_started, data = True, rest
            for event, _ in sse.feed(chunks.feed(data)):
                if event == b"progress":
                    progress += 1
                    if first is None:
                        first = time.perf_counter()
                elif event in (b"complete", b"error"):
                    ended = time.perf_counter()
                    cpu = server.cpu() - cpu_before
                    span = ended - (first or started)
                    return {
                        "progress_events": progress,
                        "seconds": round(ended - started, 3),
                        "events_per_s": round(progress / span) if span > 0 else None,
                        "server_cpu_ms": round(cpu * 1000, 1),
                        "server_cpu_ms_per_1000_events": round(cpu * 1000 / progress * 1000, 2) if progress >= 1000 else None,
                        "end": event.decode(),
                    }


def run(options: Options) -> dict[str, Any]:
    calls = 30 if options.quick else 300
    flood_n = 5_000 if options.quick else 50_000
    out: dict[str, Any] = {"in_process_us_per_call": asyncio.run(_in_process(calls * 10, flood_n))}
    unthrottled = start_lmstream(MODELS, name="lmstream-tools", store="none", tool_progress_interval=0, tools=TOOLS)
    throttled = start_lmstream([{"name": "scripted", "backend": "scripted"}], name="lmstream-tools-throttled", store="none", tools=TOOLS)
    with running([unthrottled, throttled]):
        out["round_trip"] = _round_trips(unthrottled, calls, options.rounds)
        out["progress"] = {"unthrottled": [_flood(unthrottled, flood_n) for _ in range(options.rounds)]}
        out["progress"]["default_throttle_0.1s"] = _flood(throttled, flood_n)
    ip = out["in_process_us_per_call"]
    plain, with_tool = out["round_trip"][STREAM_PLAIN]["p50_ms"], out["round_trip"][STREAM_TOOL]["p50_ms"]
    out["tables"] = [
        print_table(
            "run_tool per call, in process (µs)",
            ["async tool", "sync: lmstream tool threads", "sync: new thread per call", "sync: asyncio.to_thread", "progress events/s (run + SSE encode)"],
            [[ip["async"], ip["sync, lmstream tool threads"], ip["sync, new thread per call"], ip["sync, asyncio.to_thread"], ip["progress_events_per_s_encoded"]]],
        ),
        print_table(
            "tool round trip over HTTP, one client, keep-alive (ms)",
            ["call", "n", "p50", "p90", "added p50 vs floor"],
            [[k, v["n"], v["p50_ms"], v["p90_ms"], v["added_p50_ms"]] for k, v in out["round_trip"].items()],
        ),
        print_table(
            "a tool round trip inside a native stream (ms)",
            ["p50 answer at once", "p50 with a noop tool step", "added by the tool step"],
            [[plain, with_tool, round(with_tool - plain, 3)]],
        ),
        print_table(
            f"progress events one stream carries ({flood_n:,} reported as fast as possible)",
            ["server", "events received", "seconds", "events/s", "server CPU ms", "server CPU ms / 1,000 events"],
            [
                [label, *(r[k] for k in ("progress_events", "seconds", "events_per_s", "server_cpu_ms", "server_cpu_ms_per_1000_events"))]
                for label, r in [
                    *(("unthrottled", r) for r in out["progress"]["unthrottled"]),
                    ("default throttle (0.1 s)", out["progress"]["default_throttle_0.1s"]),
                ]
            ],
        ),
    ]
    return out
