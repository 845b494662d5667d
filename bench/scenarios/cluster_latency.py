"""Two instances on one Redis: how fast a reconnect on B replays, and how fast Stop on B
stops A.

Two lmstream processes, A and B, on a real ``redis-server``, serving the ``scripted``
backend at 20 tokens/s through the native API. Per trial, sequentially:

* **resume**: a client reads A's stream up to event 3 and drops the connection; once the
  stream is past event 8 (so that there is something to replay, not a token to wait
  for), it asks B (``GET /v1/streams/{id}/events``, ``Last-Event-ID: 3``) on a connection
  already open, and we time the request until the first replayed event arrives. The same on A
  (a reconnect to the owner) in the same run is the baseline.
* **cancel**: a client reads A's stream (first token in); we send ``DELETE
  /v1/streams/{id}`` to B and time until A's client gets the ``done`` event that ends
  the cancelled generation (the request, B → Redis → A's pub/sub, the cancel, A's
  reader). The same ``DELETE`` sent to A is the baseline.

Run: ``python -m bench cluster_latency [--quick]``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from httpx_sse import connect_sse
from tests.services import RedisServer

from bench.procs import running
from bench.report import ms, pct, print_table
from bench.scenarios import Options
from bench.targets import start_lmstream

__all__ = ["NAME", "TITLE", "run"]

NAME = "cluster_latency"
TITLE = "Across instances: resume on B (to the first replayed event) and Stop on B (to A's done)"
SSE = {"Accept": "text/event-stream"}
TEXT = " ".join(f"w{i}" for i in range(400))
BODY = {"prompt": "bench", "store": False}


def _resume(a: httpx.Client, other: httpx.Client) -> float:
    with connect_sse(a, "POST", "/v1/streams", json=BODY, headers=SSE) as source:
        for sse in source.iter_sse():
            if sse.event == "start":
                stream_id = sse.json()["id"]
            if int(sse.id) >= 3:
                break
    while a.get(f"/v1/streams/{stream_id}").json()["last_event_id"] < 8:
        time.sleep(0.02)
    headers = {**SSE, "Last-Event-ID": "3"}
    started = time.perf_counter()
    with connect_sse(other, "GET", f"/v1/streams/{stream_id}/events", headers=headers) as source:
        for sse in source.iter_sse():
            took = time.perf_counter() - started
            assert int(sse.id) == 4, sse.id
            break
    other.delete(f"/v1/streams/{stream_id}")
    return took


def _cancel(a: httpx.Client, other: httpx.Client) -> tuple[float, float]:
    with connect_sse(a, "POST", "/v1/streams", json=BODY, headers=SSE) as source:
        events = source.iter_sse()
        stream_id = next(events).json()["id"]
        next(e for e in events if e.event == "token")
        done: list[tuple[float, dict[str, Any]]] = []

        def read_to_the_end() -> None:  # A's reader, while the DELETE is in flight
            event = next(e for e in events if e.event == "done")
            done.append((time.perf_counter(), event.json()))

        reader = threading.Thread(target=read_to_the_end)
        reader.start()
        started = time.perf_counter()
        response = other.delete(f"/v1/streams/{stream_id}")
        answered = time.perf_counter() - started
        reader.join(30)
    assert response.json()["cancelled"] and done[0][1]["cancel_reason"] == "user_stop", (response.text, done)
    return done[0][0] - started, answered


def _stats(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": ms(pct(values, 50)), "p99_ms": ms(pct(values, 99)), "max_ms": ms(max(values))}


def run(options: Options) -> dict[str, Any]:
    trials = 20 if options.quick else 200
    model = {"name": "s", "backend": "scripted", "options": {"text": TEXT, "tokens_per_second": 20}}
    out: dict[str, Any] = {"config": {"trials": trials}}
    with RedisServer() as redis:
        a = start_lmstream([model], name="lmstream-A", redis_url=redis.url, instance_id="A")
        b = start_lmstream([model], name="lmstream-B", redis_url=redis.url, instance_id="B")
        with running([a, b]), httpx.Client(base_url=a.url, timeout=30) as on_a, httpx.Client(base_url=b.url, timeout=30) as on_b:
            for _ in range(3):  # warm-up
                _resume(on_a, on_b)
                _cancel(on_a, on_b)
            resume: dict[str, list[float]] = {"B": [], "A": []}
            cancel: dict[str, list[float]] = {"B": [], "A": []}
            answered: dict[str, list[float]] = {"B": [], "A": []}
            for i in range(trials):
                where = "B" if i % 2 == 0 else "A"  # alternate: noise hits both alike
                other = on_b if where == "B" else on_a
                resume[where].append(_resume(on_a, other))
                took, reply = _cancel(on_a, other)
                cancel[where].append(took)
                answered[where].append(reply)
    rows = []
    for name, data in (("resume: first replayed event", resume), ("cancel: A's done event", cancel),
                       ("cancel: the DELETE's answer", answered)):  # fmt: skip
        for where in ("B", "A"):
            s = _stats(data[where])
            out.setdefault(name, {})[where] = s
            rows.append([name, "B (another instance)" if where == "B" else "A (the owner)", s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"]])
    out["table"] = print_table(TITLE, ["figure", "sent to", "n", "p50 ms", "p99 ms", "max ms"], rows)
    return out
