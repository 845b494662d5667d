"""What each idle open stream holds, by owner: a tracemalloc diff over N idle streams.

    .venv/bin/python -m bench.idle_memory [N]        # N = 2000 by default

Runs the app in-process under uvicorn with lmstream's HTTP protocol (uvloop) on the ``scripted`` backend
with a long prompt delay, so every stream stays open with nothing to say; opens 200
streams to warm up, then snapshots, opens N more and snapshots again. Each allocation
is charged to the newest frame of its traceback that is not asyncio's own machinery
(a coroutine frame is charged to the code that called it), grouped by owner; then
lmstream's own lines. ``bench many`` gives the RSS figure; this gives the breakdown.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import socket
import sys
import tracemalloc

import uvicorn
import uvloop

from lmstream.cli.serve import tune_gc
from lmstream.http.app import create_app
from lmstream.server.run import uvicorn_options
from lmstream.settings import ModelConfig, Settings

BODY = b'{"model":"s","messages":[{"role":"user","content":"hi"}],"stream":true}'
OWNERS = (
    ("uvicorn/", "uvicorn"),
    ("lmstream/server/", "HTTP protocol (lmstream.server)"),
    ("uvloop", "event loop"),
    ("starlette/routing", "starlette routing"),
    ("starlette/_exception", "starlette routing"),
    ("starlette/middleware", "starlette middleware"),
    ("starlette/applications", "starlette middleware"),
    ("sse_starlette", "sse framing"),
    ("lmstream/http/accesslog", "lmstream middleware"),
    ("lmstream/http/tracing", "lmstream middleware"),
    ("lmstream/http/guard", "lmstream middleware"),
    ("lmstream/http/direct", "lmstream middleware"),
    ("lmstream/backends", "backend"),
    ("lmstream/", "lmstream response, hub, log"),
)
MACHINERY = ("asyncio/locks.py", "asyncio/tasks.py", "asyncio/runners.py", "asyncio/events.py",
             "asyncio/base_events.py", "asyncio/futures.py")  # fmt: skip


def _owner(filename: str) -> str:
    return next((name for key, name in OWNERS if key in filename), "other (no Python frame of a package)")


async def _measure(n: int) -> None:
    settings = Settings(
        models=[ModelConfig(name="s", backend="scripted", options={"text": "a b c", "prompt_delay": 600})],
        heartbeat_interval=15,
    )
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", loop="none", access_log=False, **uvicorn_options(settings))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn.Server says it is up only by this flag
        await asyncio.sleep(0.05)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    )
    request = head.encode() + BODY

    async def open_one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 200"), status
        return reader, writer

    warm = await asyncio.gather(*(open_one() for _ in range(200)))
    for _, writer in warm:
        writer.close()
    await asyncio.sleep(0.5)
    gc.collect()
    tune_gc()
    tracemalloc.start(25)
    before = tracemalloc.take_snapshot()
    conns = []
    for _ in range(0, n, 200):
        conns += await asyncio.gather(*(open_one() for _ in range(200)))
    await asyncio.sleep(1)
    after = tracemalloc.take_snapshot()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "*/asyncio/streams.py"),
              tracemalloc.Filter(False, __file__)]  # fmt: skip
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    owners: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    for stat in stats:
        if stat.size_diff <= 0:
            continue
        frames = [f for f in stat.traceback if not f.filename.endswith(MACHINERY)]
        owners[_owner(frames[-1].filename) if frames else "event loop"] += stat.size_diff
        ours = [f for f in stat.traceback if "lmstream/" in f.filename]
        if ours:
            lines[f"{ours[-1].filename.split('lmstream/')[-1]}:{ours[-1].lineno}"] += stat.size_diff
    total = sum(owners.values())
    print(f"traced per idle stream: {total / n:,.0f} B over {n} streams")
    for name, size in owners.most_common():
        print(f"{size / n:8,.0f} B  {name}")
    print("lmstream's lines (the newest lmstream frame of each allocation):")
    for where, size in lines.most_common(15):
        print(f"{size / n:8,.0f} B  {where}")
    server.should_exit = True
    for _, writer in conns:
        writer.close()
    await asyncio.wait_for(task, 10)


def main() -> None:
    uvloop.run(_measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))


if __name__ == "__main__":
    main()
