"""``lmstream serve``: run the server (uvicorn, uvloop, httptools; ``lmstream.server``);
``--workers N``: N of them on one port, coordinated through Redis (``workers.py``)."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from lmstream.cli.workers import run_workers, worker_index
from lmstream.errors import StoreUnavailable
from lmstream.settings import Settings, load_settings

__all__ = ["register", "run_server", "tune_gc"]

# Young-generation threshold: CPython's default (700) runs a collection every few hundred
# allocations, and the older generations follow; with 10,000 open streams the heap holds
# millions of live objects, and each full collection walks all of them (bench/: the
# many-clients scenario spent ~40% of its CPU in the collector and stalled token delivery
# by up to 1.3 s). Middle generation every 2 young collections, not 20: the survivors of
# twenty young collections (10,000 streams opening) were walked in one go, a 0.3-0.6 s
# stall of every stream; two at a time keep that walk to ~0.1 s (BENCHMARKS.md, "10,000
# streams: the collector's middle generation").
GC_THRESHOLDS = (50_000, 2, 100)


def tune_gc() -> None:
    """Move everything alive after start-up (modules, the app) out of the collector's sight
    and collect less often: the server's objects are mostly long-lived or acyclic."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _stored_keys(settings: Settings) -> bool:
    """Whether the store holds API keys (``lmstream keys create``): they turn auth on too."""
    import asyncio

    from lmstream.store import build_store
    from lmstream.store.keys import KeyStore

    store = build_store(settings)
    if not isinstance(store, KeyStore):
        return False

    async def check() -> bool:
        try:
            await store.open()
            try:
                return await store.has_keys()
            finally:
                await store.aclose()
        except StoreUnavailable as exc:  # damaged and refused, unreachable: never "no keys"
            raise typer.BadParameter(
                f"cannot tell whether the store holds API keys ({exc.message}); set keys in the "
                "configuration, or mend the store",
                param_hint="--host",
            ) from None

    return asyncio.run(check())


def run_server(settings: Settings, *, worker: int | None = None) -> None:
    from lmstream.http.app import create_app
    from lmstream.server import reuse_port_socket, serve

    try:
        keys = settings.all_api_keys()
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--api-key-file") from None
    public = not settings.is_loopback() and not settings.allow_insecure_bind
    if public and not keys and not _stored_keys(settings):
        raise typer.BadParameter(
            f"refusing to listen on {settings.host} without API keys: set LMSTREAM_API_KEYS / "
            "--api-key, create one with `lmstream keys create`, or pass --allow-insecure-bind "
            "if the network is trusted",
            param_hint="--host",
        )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Neither format names a thread or a process: a record need not look them up (three
    # lookups in every record, one access line per request).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    access = logging.getLogger("lmstream.access")  # its lines are JSON objects already
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    app = create_app(settings)
    tune_gc()
    # one of --workers: the port is shared with the others (SO_REUSEPORT)
    sockets = None if worker is None else [reuse_port_socket(settings.host, settings.port)]
    if not serve(app, settings, sockets=sockets):  # uvicorn with the connection protections (lmstream.server)
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        config: Annotated[Path | None, typer.Option(help="TOML settings file (or LMSTREAM_CONFIG).")] = None,
        host: Annotated[str | None, typer.Option(help="Address to bind [127.0.0.1].")] = None,
        port: Annotated[int | None, typer.Option(help="Port [8000].")] = None,
        model: Annotated[str | None, typer.Option(help="A GGUF file to serve instead of the packaged Gemma 3 270M.")] = None,
        backend: Annotated[str | None, typer.Option(help="Backend of the single default model: llama_cpp, scripted, openai, ollama, anthropic [llama_cpp].")] = None,
        upstream_url: Annotated[str | None, typer.Option(help="With an upstream --backend: its base URL.")] = None,
        upstream_model: Annotated[str | None, typer.Option(help="With an upstream --backend: its model name.")] = None,
        api_key: Annotated[list[str] | None, typer.Option("--api-key", help="Require this key (repeatable).")] = None,
        api_key_file: Annotated[Path | None, typer.Option(help="File with one API key per line.")] = None,
        allow_insecure_bind: Annotated[bool | None, typer.Option("--allow-insecure-bind", help="Allow a non-loopback host without keys.")] = None,
        n_ctx: Annotated[int | None, typer.Option(help="Context window of the embedded model [4096].")] = None,
        n_threads: Annotated[int | None, typer.Option(help="Threads for the embedded model [all cores].")] = None,
        queue_size: Annotated[int | None, typer.Option(help="Requests that may wait per model [16].")] = None,
        heartbeat_interval: Annotated[float | None, typer.Option(help="Seconds between SSE heartbeats [15].")] = None,
        grace_period: Annotated[float | None, typer.Option(help="Seconds a native stream waits for a resume [10].")] = None,
        data_dir: Annotated[Path | None, typer.Option(help="Where conversations are kept.")] = None,
        redis_url: Annotated[str | None, typer.Option(help="Share streams with other instances through this Redis (redis://host:port/db).")] = None,
        workers: Annotated[int | None, typer.Option(help="Server processes on this port, coordinated through Redis (needs redis_url) [1].")] = None,
        log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    ) -> None:
        """Serve the API (and the web chat) on 127.0.0.1:8000."""
        try:
            settings = load_settings(
                config,
                host=host,
                port=port,
                model=model,
                backend=backend,
                upstream_url=upstream_url,
                upstream_model=upstream_model,
                api_keys=api_key or None,
                api_key_file=api_key_file,
                allow_insecure_bind=allow_insecure_bind,
                n_ctx=n_ctx,
                n_threads=n_threads,
                queue_size=queue_size,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                data_dir=data_dir,
                redis_url=redis_url,
                workers=workers,
                log_level=log_level,
            )
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from None
        if settings.model is not None and not Path(settings.model).is_file():
            raise typer.BadParameter(f"no GGUF file at {settings.model}", param_hint="--model")
        index = worker_index()
        if settings.workers > 1 and index is None:
            if settings.redis_url is None:
                raise typer.BadParameter(
                    f"--workers {settings.workers} needs Redis, where the workers share their streams: "
                    "set redis_url (--redis-url, LMSTREAM_REDIS_URL or the config file)",
                    param_hint="--workers",
                )
            raise typer.Exit(run_workers(settings, sys.argv[1:]))
        run_server(settings, worker=index)
