"""The load generator against the benchmarks' fake upstream (real processes, real
sockets): what the cancellation scenarios rely on it to do."""

from __future__ import annotations

import time
from typing import Any

from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.procs import running
from bench.scenarios.common import chat_body
from bench.targets import start_fake_upstream


def run_against_fake(tokens: int, name: str, **spec: Any) -> tuple[LoadResult, float]:
    """``spec`` run against a fresh fake upstream of ``tokens``-token answers; the result,
    and the moment ``run_load`` returned (the upstream still up)."""
    upstream = start_fake_upstream(tps=200, tokens=tokens, name=name)
    with running([upstream]):
        port = int(upstream.url.rsplit(":", 1)[1])
        body = chat_body("fake", max_tokens=tokens)
        result = run_load(LoadSpec(port=port, path="/v1/chat/completions", body=body, timeout_s=30, **spec))
        return result, time.monotonic()


def test_only_the_leavers_disconnect_after_k_tokens() -> None:
    result, _ = run_against_fake(12, "fake-loadgen-test", clients=4, disconnect_after=3, leavers=1)
    tokens = {s.client: s.tokens for s in result.streams}
    assert tokens == {0: 3, 1: 12, 2: 12, 3: 12}
    assert not result.failed


def test_a_lingering_load_generator_outlives_its_last_stream_by_linger_s() -> None:
    """``linger_s`` keeps the load generator's exit out of what follows a disconnect (the
    embedded cancel scenario: its exit used to slow the decode step in flight)."""
    result, returned = run_against_fake(50, "fake-loadgen-linger", clients=1, disconnect_after=2, linger_s=0.4)
    (stream,) = result.streams
    assert stream.tokens == 2 and stream.t_disconnect is not None
    assert returned - stream.t_disconnect >= 0.4  # the worker reported only after lingering
