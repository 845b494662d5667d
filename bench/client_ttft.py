"""``python -m bench.client_ttft``: per-request cost of each upstream HTTP client, in-process.

The ``openai`` backend (the product's code) over each client, against a loopback
upstream in the same uvloop loop that answers 16 tokens at once: the median time
from ``backend.open()`` to the first ``TextDelta`` and to the end, over ``--requests``
sequential requests (the first 50 are warm-up), clients alternated ``--rounds`` times.
No HTTP server in front, no other process: machine noise moves every row alike, so
the ratios hold on a busy machine where the ``overhead`` scenario's milliseconds do not.
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson
import uvloop
from tests.httpclient.servers import Upstream, sse_response

from bench.upstream_clients import make_client
from lmstream.backends.base import BackendContext
from lmstream.backends.registry import get_backend_factory
from lmstream.events import TextDelta
from lmstream.httpclient import HTTPClient
from lmstream.request import ChatRequest, Message
from lmstream.settings import ModelConfig, Settings

CLIENTS = ("lmstream", "aiohttp", "httpcore", "httpx")


def frame(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


ANSWER = [frame({"choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}) for i in range(16)]
ANSWER += [frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), b"data: [DONE]\n\n"]


async def measure(requests: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {}
    request = ChatRequest(messages=(Message("user", "hi"),))
    async with Upstream(lambda _: sse_response(*ANSWER)) as upstream:
        for _ in range(rounds):
            for name in CLIENTS:
                client = HTTPClient() if name == "lmstream" else make_client(name)
                config = ModelConfig(name="m", backend="openai", url=upstream.url("/v1"), upstream_model="u")
                backend = get_backend_factory("openai")(config, BackendContext(settings=Settings(data_dir="/nonexistent"), http=client))
                firsts, totals = [], []
                for _ in range(requests):
                    started = time.perf_counter()
                    stream = await backend.open(request)
                    first = 0.0
                    async for event in stream:
                        if not first and isinstance(event, TextDelta):
                            first = time.perf_counter() - started
                    await stream.aclose()
                    firsts.append(first)
                    totals.append(time.perf_counter() - started)
                await client.aclose()
                results.setdefault(name, []).append((statistics.median(firsts[50:]), statistics.median(totals[50:])))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = uvloop.run(measure(max(60, args.requests), args.rounds))
    print("| client | open → first token (µs, median per round) | open → end (µs) |\n|---|---|---|")
    for name, rows in results.items():
        print(f"| {name} | {' / '.join(f'{a * 1e6:.0f}' for a, _ in rows)} | {' / '.join(f'{b * 1e6:.0f}' for _, b in rows)} |")


if __name__ == "__main__":
    main()
