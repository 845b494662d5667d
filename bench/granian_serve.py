"""lmstream's app under granian instead of uvicorn, for the ``many`` scenario's comparison.

``python -m bench.granian_serve serve --config FILE --port N``: the same settings, app
and start-up (``create_app``, ``tune_gc``) as ``lmstream serve``, served by granian
(Rust HTTP server, ASGI interface, one worker, uvloop, access log off). Bench only: the
figures decide whether lmstream's ``serve`` should move to it (BENCHMARKS.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from starlette.applications import Starlette

__all__ = ["app", "main"]


def app() -> Starlette:
    """The factory granian's worker calls (it imports this module anew)."""
    from lmstream.cli.serve import tune_gc
    from lmstream.http.app import create_app
    from lmstream.settings import load_settings

    settings = load_settings(Path(os.environ["LMSTREAM_BENCH_CONFIG"]))
    application = create_app(settings)
    tune_gc()
    return application


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops, RuntimeModes, TaskImpl

    args = sys.argv[1:]
    config, port = args[args.index("--config") + 1], int(args[args.index("--port") + 1])
    os.environ["LMSTREAM_BENCH_CONFIG"] = config
    Granian(
        "bench.granian_serve:app",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        factory=True,
        log_access=False,
        backlog=4096,
        runtime_mode=RuntimeModes(os.environ.get("LMSTREAM_GRANIAN_RUNTIME", "auto")),
        task_impl=TaskImpl(os.environ.get("LMSTREAM_GRANIAN_TASKS", "asyncio")),
    ).serve()


if __name__ == "__main__":
    main()
