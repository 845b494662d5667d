"""Test support: in-process apps (httpx ASGI transport) and real server processes.

``live_server`` starts ``python -m lmstream serve`` with a TOML config on a free
loopback port and waits for ``/health``; every end-to-end test uses it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lmstream.http.app import create_app
from lmstream.settings import ModelConfig, Settings

__all__ = ["LiveServer", "app_client", "free_port", "live_server", "scripted", "toml_config"]


def scripted(name: str = "scripted", **options: Any) -> ModelConfig:
    aliases = options.pop("aliases", [])
    return ModelConfig(name=name, backend="scripted", aliases=aliases, options=options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def app_client(settings: Settings, **app_kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, lifespan included. (ASGITransport buffers whole responses:
    use ``live_server`` to watch tokens arrive or to disconnect mid-stream.)"""
    app = create_app(settings, **app_kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lmstream.localhost") as client:
            yield client


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_config(models: list[ModelConfig] | None = None, **settings: Any) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in settings.items() if v is not None]
    for model in models or []:
        lines.append("\n[[models]]")
        for key, value in model.model_dump(exclude_none=True).items():
            if value in ([], {}):
                continue
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_server(
    tmp_path: Path,
    models: list[ModelConfig] | None = None,
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    port: int | None = None,
    timeout: float = 60.0,
    **settings: Any,
) -> LiveServer:
    port = port or free_port()
    settings.setdefault("data_dir", str(tmp_path / "data"))
    config = tmp_path / f"lmstream-{port}.toml"
    config.write_text(toml_config(models, **settings))
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    full_env.pop("LMSTREAM_CONFIG", None)
    full_env["LMSTREAM_DATA_DIR"] = str(settings["data_dir"])  # the environment beats the file
    process = subprocess.Popen(
        [sys.executable, "-m", "lmstream", "serve", "--config", str(config), "--port", str(port), *(args or [])],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", port, process, config, log_path, env or {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"server did not become healthy in {timeout}s:\n{server.log()}")


@contextlib.contextmanager
def live_server(tmp_path: Path, models: list[ModelConfig] | None = None, **kwargs: Any) -> Iterator[LiveServer]:
    server = start_server(tmp_path, models, **kwargs)
    try:
        yield server
    finally:
        server.stop()
