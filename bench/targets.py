"""The servers a scenario measures, each started as its own process on a free port.

* the fake upstream (``bench.fake_upstream``), in lmstream's venv;
* lmstream itself (``python -m lmstream serve --config <toml>``), in lmstream's venv,
  exactly as a user runs it (uvicorn, uvloop, httptools, no access log);
* LiteLLM's proxy (``litellm --config``), one worker, in its own venv, against the fake
  upstream, with ``LITELLM_LOG=ERROR`` (which also turns uvicorn's access log off,
  as lmstream's is);
* ``python -m llama_cpp.server`` on the packaged GGUF, in its own venv.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

from bench import peers
from bench.procs import LOGS, Server, free_port, start_server

__all__ = [
    "LITELLM_KEY",
    "gguf_path",
    "start_fake_upstream",
    "start_litellm",
    "start_llama_server",
    "start_lmstream",
]

ROOT = Path(__file__).resolve().parent.parent
# LiteLLM refuses to start without a master key; a fresh long random one per run.
LITELLM_KEY = "sk-bench-" + secrets.token_hex(24)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def start_fake_upstream(*, tps: float, tokens: int, ttft: float = 0.0, name: str = "fake-upstream") -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.fake_upstream", "--port", str(port), "--tps", str(tps), "--tokens", str(tokens), "--ttft", str(ttft)]
    return start_server(name, argv, url=f"http://127.0.0.1:{port}", timeout=20, cwd=ROOT)


def start_lmstream(
    models: list[dict[str, Any]],
    *,
    name: str = "lmstream",
    launcher: str = "lmstream",
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Server:
    """lmstream serving ``models`` (``[[models]]`` tables) with top-level ``settings``;
    ``launcher`` is the module run with ``-m`` (``bench.upstream_clients`` to put another
    HTTP client under the upstream backends, named in ``env``)."""
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {_toml(v)}" for k, v in {"log_level": "warning", **settings}.items()]
    for model in models:
        lines.append("\n[[models]]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in model.items())
    config = LOGS / f"{name}.toml"
    config.write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", launcher, "serve", "--config", str(config), "--port", str(port)]
    return start_server(name, argv, url=f"http://127.0.0.1:{port}", timeout=120, cwd=ROOT, env={"LMSTREAM_CONFIG": "", **(env or {})})


def start_litellm(upstreams: dict[str, Server]) -> Server:
    """LiteLLM's proxy routing each model name to its fake upstream."""
    peer = peers.ensure("litellm")
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    config = LOGS / "litellm.yaml"
    lines = ["model_list:"]
    for model, upstream in upstreams.items():
        lines += [
            f"  - model_name: {model}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream.url}/v1",
            "      api_key: sk-fake-upstream",
        ]
    config.write_text("\n".join(lines) + "\n")
    argv = [str(peer.venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = {
        "LITELLM_MASTER_KEY": LITELLM_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
    }
    server = start_server("litellm", argv, url=f"http://127.0.0.1:{port}", health_path="/health/liveliness", env=env, timeout=180)
    server.extra["version"] = peer.version()
    return server


def gguf_path() -> str:
    from lmstream.model_assets import default_model_path
    from lmstream.settings import Settings

    return str(default_model_path(Settings().cache_dir))


def start_llama_server(*, n_threads: int, n_ctx: int) -> Server:
    peer = peers.ensure("llama-server")
    port = free_port()
    argv = [
        str(peer.python), "-m", "llama_cpp.server", "--model", gguf_path(), "--host", "127.0.0.1",
        "--port", str(port), "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads),
        "--n_ctx", str(n_ctx), "--chat_format", "gemma", "--interrupt_requests", "False",
    ]  # fmt: skip
    server = start_server("llama-server", argv, url=f"http://127.0.0.1:{port}", health_path="/v1/models", timeout=180)
    server.extra["version"] = peer.version()
    return server
