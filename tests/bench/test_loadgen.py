"""The load generator against the benchmarks' fake upstream (real processes, real
sockets): what the cancellation scenarios rely on it to do."""

from __future__ import annotations

from bench.loadgen import LoadSpec, run_load
from bench.procs import running
from bench.scenarios.common import chat_body
from bench.targets import start_fake_upstream


def test_only_the_leavers_disconnect_after_k_tokens() -> None:
    upstream = start_fake_upstream(tps=200, tokens=12, name="fake-loadgen-test")
    with running([upstream]):
        port = int(upstream.url.rsplit(":", 1)[1])
        spec = LoadSpec(
            port=port, path="/v1/chat/completions", body=chat_body("fake", max_tokens=12), clients=4,
            disconnect_after=3, leavers=1, timeout_s=30,
        )  # fmt: skip
        result = run_load(spec)
    tokens = {s.client: s.tokens for s in result.streams}
    assert tokens == {0: 3, 1: 12, 2: 12, 3: 12}
    assert not result.failed
