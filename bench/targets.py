"""The servers a scenario measures, each started as its own process on a free port.

* the fake upstream (``bench.fake_upstream``), in lmstream's venv;
* lmstream itself (``python -m lmstream serve --config <toml>``), in lmstream's venv,
  exactly as a user runs it (uvicorn, uvloop, httptools, no access log);
* LiteLLM's proxy (``litellm --config``), one worker, in its own venv, against the fake
  upstream, with ``LITELLM_LOG=ERROR`` (which also turns uvicorn's access log off,
  as lmstream's is);
* ``python -m llama_cpp.server`` on the packaged GGUF, in its own venv;
* llama.cpp's own ``llama-server`` (``bench.native_server`` builds it once) on the same GGUF;
* lmstream as it was at an earlier commit (``start_lmstream(baseline=REF)``): that
  commit's ``src/`` run with the same venv, for before/after figures in one run.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import native_server, peers
from bench.procs import LOGS, Server, free_port, start_server

__all__ = [
    "LITELLM_KEY",
    "gguf_path",
    "start_byte_relay",
    "start_fake_upstream",
    "start_litellm",
    "start_llama_server",
    "start_lmstream",
    "start_native_llama_server",
    "start_python_relay",
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


def start_byte_relay(upstream: Server, *, name: str = "relay-floor") -> Server:
    """``bench/byte_relay.py`` in front of ``upstream``: bytes forwarded, nothing parsed."""
    port = free_port()
    upstream_port = upstream.url.rsplit(":", 1)[1]
    argv = [sys.executable, "-m", "bench.byte_relay", "--port", str(port), "--upstream-port", upstream_port]
    return start_server(name, argv, url=f"http://127.0.0.1:{port}", timeout=20, cwd=ROOT)


def start_python_relay(upstream: Server, *, name: str = "relay-python") -> Server:
    """``bench/python_relay.py`` in front of ``upstream``: the least a Python relay that
    parses the stream does."""
    port = free_port()
    upstream_port = upstream.url.rsplit(":", 1)[1]
    argv = [sys.executable, "-m", "bench.python_relay", "--port", str(port), "--upstream-port", upstream_port]
    return start_server(name, argv, url=f"http://127.0.0.1:{port}", timeout=20, cwd=ROOT)


def start_lmstream(
    models: list[dict[str, Any]],
    *,
    name: str = "lmstream",
    launcher: str = "lmstream",
    env: dict[str, str] | None = None,
    baseline: str | None = None,
    **settings: Any,
) -> Server:
    """lmstream serving ``models`` (``[[models]]`` tables) with top-level ``settings``;
    ``launcher`` is the module run with ``-m`` (``bench.upstream_clients`` to put another
    HTTP client under the upstream backends, named in ``env``); ``baseline``: a git ref
    whose ``src/`` runs instead of the working tree's."""
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {_toml(v)}" for k, v in {"log_level": "warning", **settings}.items()]
    for model in models:
        lines.append("\n[[models]]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in model.items())
    config = LOGS / f"{name}.toml"
    config.write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", launcher, "serve", "--config", str(config), "--port", str(port)]
    env = {"LMSTREAM_CONFIG": "", **(env or {})}
    if baseline is not None:
        env["PYTHONPATH"] = str(_baseline_src(baseline))
    server = start_server(name, argv, url=f"http://127.0.0.1:{port}", timeout=120, cwd=ROOT, env=env)
    if baseline is not None:
        server.extra["version"] = baseline
    return server


def _baseline_src(ref: str) -> Path:
    """``src/`` of commit ``ref``, unpacked once per commit under ``bench/results/logs/``
    (the web page's built assets, which git does not keep, copied from the working tree).
    The ref is resolved first: ``HEAD`` or a branch names another commit tomorrow."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"], capture_output=True, check=True, text=True
    ).stdout.strip()
    target = LOGS / f"baseline-{commit[:12]}"
    if (target / "src" / "lmstream").is_dir():
        return target / "src"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    dist = ROOT / "src" / "lmstream" / "web" / "dist"
    if dist.is_dir():
        shutil.copytree(dist, target / "src" / "lmstream" / "web" / "dist", dirs_exist_ok=True)
    return target / "src"


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


def start_native_llama_server(*, n_threads: int, n_ctx: int, parallel: int) -> Server:
    """llama.cpp's ``llama-server`` with ``parallel`` slots of ``n_ctx`` tokens each, its
    defaults otherwise (continuous batching on, flash attention auto)."""
    binary = native_server.ensure()
    port = free_port()
    argv = [
        str(binary), "-m", gguf_path(), "--host", "127.0.0.1", "--port", str(port), "-t", str(n_threads),
        "-tb", str(n_threads), "-np", str(parallel), "-c", str(n_ctx * parallel), "--no-webui",
    ]  # fmt: skip
    server = start_server("llama.cpp-server", argv, url=f"http://127.0.0.1:{port}", health_path="/health", timeout=180)
    server.extra["version"] = f"llama.cpp vendored in llama-cpp-python {peers.LLAMA_VERSION}"
    return server
