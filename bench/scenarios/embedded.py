"""Scenario 3, the embedded model: lmstream (``llama_cpp`` backend) vs ``llama_cpp.server``.

Same GGUF (the packaged Gemma 3 270M), same llama-cpp-python build (lmstream's AVX2
wheel), 2 threads, ``n_ctx`` 4096, greedy sampling. Like with like: lmstream gets an
OpenAI chat request and, for this base model without a chat template, builds the
transcript prompt ``User: <question>\\nAssistant:`` with its transcript stop sequences;
the peer gets that very prompt text on its completion endpoint (``/v1/completions``,
``stop`` = the same sequences, ``repeat_penalty`` 1.0 as lmstream samples without one).
Greedy decoding makes both produce the same text, which is checked. Every request
has a fresh question (its number comes first), so neither server reuses a cached prefix.

* ``single``: one request at a time, alternating servers: TTFT, decode tokens/s
  (completion tokens - 1 over first-to-last token time).
* ``four``: 4 clients at once; what each waits for its first token and its end, and
  the latency of a health request (``/health``; the peer's ``/v1/models``) every 50 ms
  during the load.
* ``cancel``: a client leaves after 5 tokens of a 400-token answer, and at once sends
  a short follow-up request. lmstream: time until ``/health`` shows
  ``tokens_generated`` stop growing (polled every 5 ms; the load generator stays idle
  after it leaves, so that its own exit is not what the server competes with). Both:
  the follow-up's TTFT minus an idle server's (how long the abandoned generation still
  held the model).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

import orjson

from bench.loadgen import LoadSpec, StreamRecord, run_load
from bench.procs import Server, running
from bench.report import pct, print_table
from bench.scenarios import Options
from bench.targets import start_llama_server, start_lmstream

__all__ = ["NAME", "run"]

NAME = "embedded"
TITLE = "Embedded model (lmstream llama_cpp backend vs llama_cpp.server, same GGUF)"
N_THREADS = 2
N_CTX = 4096
MODEL = "gemma3-270m"
# A question this base model answers at length under greedy decoding (it counts on).
QUESTION = "{n}. Continue this sequence: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"
STOPS = ("\nUser:", "\nSystem:", "\nAssistant:", "\nTool:", "<end_of_turn>")


def _lm_body(question: str, max_tokens: int) -> str:
    return orjson.dumps({
        "model": MODEL, "messages": [{"role": "user", "content": question}], "stream": True,
        "stream_options": {"include_usage": True}, "max_tokens": max_tokens, "temperature": 0,
    }).decode()  # fmt: skip


def _peer_body(question: str, max_tokens: int) -> str:
    from lmstream.prompt import transcript_prompt
    from lmstream.request import Message

    prompt = transcript_prompt([Message("user", question)])
    return orjson.dumps({
        "model": MODEL, "prompt": prompt, "stream": True, "max_tokens": max_tokens, "temperature": 0,
        "repeat_penalty": 1.0, "stop": list(STOPS),
    }).decode()  # fmt: skip


class _Side:
    def __init__(self, name: str, server: Server, path: str, dialect: str, health: str) -> None:
        self.name, self.server, self.path, self.dialect, self.health = name, server, path, dialect, health
        self.port = int(server.url.rsplit(":", 1)[1])

    def body(self, question: str, max_tokens: int) -> str:
        return _lm_body(question, max_tokens) if self.name == "lmstream" else _peer_body(question, max_tokens)

    def spec(self, **kwargs: Any) -> LoadSpec:
        kwargs.setdefault("body", "")
        return LoadSpec(port=self.port, path=self.path, dialect=self.dialect, keep_text=True, timeout_s=120, idle_timeout_s=60, **kwargs)


def _get_json(url: str) -> tuple[float, Any]:
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as response:
        data = orjson.loads(response.read())
    return time.monotonic() - t0, data


class _Poller(threading.Thread):
    """GETs ``url`` every ``interval`` s, keeping (time, latency, json) samples."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.samples: list[tuple[float, float, Any]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            t = time.monotonic()
            try:
                latency, data = _get_json(self.url)
                self.samples.append((t, latency, data))
            except OSError:
                self.samples.append((t, float("nan"), None))
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(15)


def _rate(s: StreamRecord, tokens: int | None) -> float | None:
    span = sum(s.gaps)
    n = tokens if tokens is not None else s.tokens
    return round((n - 1) / span, 1) if span > 0 and n > 1 else None


def run(options: Options) -> dict[str, Any]:
    trials = 2 if options.quick else 5
    lm = start_lmstream([{"name": MODEL, "backend": "llama_cpp"}], name="lmstream-embedded", n_threads=N_THREADS, n_ctx=N_CTX)
    servers = [lm]
    with running(servers):
        peer = start_llama_server(n_threads=N_THREADS, n_ctx=N_CTX)
        servers.append(peer)
        sides = [
            _Side("lmstream", lm, "/v1/chat/completions", "openai", "/health"),
            _Side("llama_cpp.server", peer, "/v1/completions", "completion", "/v1/models"),
        ]
        out: dict[str, Any] = {"versions": {"llama_cpp.server": peer.extra.get("version", "?")}, "n_threads": N_THREADS, "n_ctx": N_CTX}
        # warm-up
        for side in sides:
            run_load(side.spec(body=side.body(QUESTION.format(n=0), 8)))

        # single ---------------------------------------------------------------------------
        single: dict[str, list[StreamRecord]] = {s.name: [] for s in sides}
        for trial in range(trials):
            question = QUESTION.format(n=100 + trial)
            for side in sides:
                result = run_load(side.spec(body=side.body(question, 128)))
                single[side.name].extend(result.streams)
        same_text = [a.text == b.text for a, b in zip(single["lmstream"], single["llama_cpp.server"], strict=True)]
        rows = []
        out["single"] = {}
        for side in sides:
            recs = single[side.name]
            # the peer sends no usage: with identical text, lmstream's token count is the peer's
            counts = [
                s.usage_tokens if s.usage_tokens is not None else (o.usage_tokens if same else None)
                for s, o, same in zip(recs, single["lmstream"], same_text, strict=True)
            ]
            rates = [r for r in (_rate(s, c) for s, c in zip(recs, counts, strict=True)) if r is not None]
            ttfts = [s.ttft for s in recs if s.ttft is not None]
            entry = {
                "ttft_ms_p50": _ms(pct(ttfts, 50)),
                "ttft_ms_max": _ms(max(ttfts, default=None)),
                "tokens_per_s_p50": pct(rates, 50),
                "completion_tokens": counts,
                "errors": [s.error for s in recs if s.error],
            }
            out["single"][side.name] = entry
            rows.append([side.name, len(recs), entry["ttft_ms_p50"], entry["ttft_ms_max"], entry["tokens_per_s_p50"], sum(same_text)])
        out["single"]["same_text"] = same_text
        out["single_table"] = print_table("Embedded: one request at a time", ["server", "requests", "TTFT p50 ms", "TTFT max ms", "tokens/s p50", "same text as the other"], rows)

        # four clients -----------------------------------------------------------------------
        rows = []
        out["four"] = {}
        for side in sides:
            poller = _Poller(side.server.url + side.health, 0.05)
            poller.start()
            time.sleep(0.3)
            result = run_load(side.spec(body=side.body(QUESTION.format(n="2__I__"), 64), clients=4))
            time.sleep(0.2)
            poller.stop()
            starts = min(s.t0 for s in result.streams)
            waits = sorted(s.ttft for s in result.streams if s.ttft is not None)
            ends = sorted((s.t_end or starts) - starts for s in result.streams)
            latencies = [lat for _, lat, _ in poller.samples if lat == lat]
            entry = {
                "ttft_ms": [_ms(w) for w in waits],
                "end_ms": [_ms(e) for e in ends],
                "health_ms_p50": _ms(pct(latencies, 50)),
                "health_ms_max": _ms(max(latencies, default=None)),
                "health_failed": sum(1 for _, lat, _ in poller.samples if lat != lat),
                "errors": [s.error for s in result.streams if s.error],
            }
            out["four"][side.name] = entry
            rows.append([side.name, " / ".join(f"{w:.0f}" for w in entry["ttft_ms"]), " / ".join(f"{e:.0f}" for e in entry["end_ms"]),
                         entry["health_ms_p50"], entry["health_ms_max"], len(entry["errors"])])  # fmt: skip
        out["four_table"] = print_table("Embedded: 4 clients at once", ["server", "TTFT ms (each client)", "done after ms (each)", "health p50 ms", "health max ms", "errors"], rows)

        # cancellation ---------------------------------------------------------------------------
        rows = []
        out["cancel"] = {}
        for side in sides:
            stop_ms: list[float] = []
            extra_tokens: list[int] = []
            follow_ttft: list[float] = []
            idle_ttft: list[float] = []
            for trial in range(trials):
                question = QUESTION.format(n=300 + trial)
                follow = side.body(QUESTION.format(n=400 + trial), 4)
                # the follow-up on an idle server, for reference
                idle = run_load(side.spec(body=side.body(QUESTION.format(n=500 + trial), 4)))
                if idle.streams[0].ttft is not None:
                    idle_ttft.append(idle.streams[0].ttft)
                if side.name == "lmstream":
                    # the model's own counter, with nothing else running after the disconnect
                    poller = _Poller(side.server.url + "/health", 0.005)
                    poller.start()
                    time.sleep(0.1)
                    # the load generator stays idle for 0.6 s after it leaves: its own exit used
                    # to fall into the decode step in flight and slow it 2-3x (both cores)
                    alone = run_load(side.spec(body=side.body(question, 400), disconnect_after=5, linger_s=0.6))
                    poller.stop()
                    t_disconnect = alone.streams[0].t_disconnect
                    if t_disconnect is not None:
                        stopped, extra = _stop_time(poller.samples, t_disconnect)
                        if stopped is not None:
                            stop_ms.append(stopped)
                            extra_tokens.append(extra)
                result = run_load(side.spec(sequence=[(side.body(QUESTION.format(n=600 + trial), 400), 5), (follow, None)]))
                second = result.streams[1]
                if second.ttft is not None:
                    follow_ttft.append(second.ttft)
            held = [max(0.0, f - i) for f, i in zip(follow_ttft, idle_ttft, strict=False)]
            entry = {
                "stop_after_disconnect_ms": [round(1000 * v, 1) for v in stop_ms],
                "tokens_after_disconnect": extra_tokens,
                "follow_up_ttft_ms": [_ms(v) for v in follow_ttft],
                "idle_ttft_ms": [_ms(v) for v in idle_ttft],
                "model_held_after_disconnect_ms": [_ms(v) for v in held],
            }
            out["cancel"][side.name] = entry
            rows.append([side.name, _ms(pct(stop_ms, 50)) if stop_ms else "n/a (no counter)", max(extra_tokens, default=None),
                         _ms(pct(idle_ttft, 50)), _ms(pct(follow_ttft, 50)), _ms(pct(held, 50)), _ms(max(held, default=None))])  # fmt: skip
        out["cancel_table"] = print_table(
            "Embedded: cancellation (client leaves after 5 of 400 tokens)",
            ["server", "generation stopped after ms (p50)", "tokens after leaving (max)", "idle TTFT ms", "follow-up TTFT ms", "model held ms (p50)", "held max ms"],
            rows,
        )
        return out


def _stop_time(samples: list[tuple[float, float, Any]], t_disconnect: float) -> tuple[float | None, int]:
    """When the model's ``tokens_generated`` reached its final value, after the disconnect
    (an upper bound: the first poll that saw that value), and the tokens made after it."""
    values = [(t + lat, data["models"][0]["tokens_generated"]) for t, lat, data in samples if data]
    if not values:
        return None, 0
    final = values[-1][1]
    before = [v for t, v in values if t <= t_disconnect]
    at_disconnect = before[-1] if before else values[0][1]
    first_seen = next(t for t, v in values if v == final)
    return max(0.0, first_seen - t_disconnect), final - at_disconnect


def _ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 1)
