"""One upstream model's request and timeout policy, read from its ``ModelConfig``.

Per-model ``options`` (all optional): ``headers`` (extra request headers),
``connect_timeout``, ``first_token_timeout``, ``token_timeout`` (default: Settings),
``retries`` (default ``Settings.upstream_retries``), ``status_wait`` (default 2 s),
``context_window``, ``capabilities`` (a table overriding what the kind passes
through, e.g. ``{ logprobs = false }`` for an Ollama older than 0.12.11).

A bad value is a ``ValueError`` naming the model, raised when the backend is built,
never during a request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import urlsplit

from lmstream.backends.base import BackendContext
from lmstream.capabilities import Capabilities
from lmstream.settings import ModelConfig

__all__ = ["DEFAULT_STATUS_WAIT", "UpstreamConfig", "model_capabilities"]

DEFAULT_STATUS_WAIT = 2.0


def model_capabilities(default: Capabilities, config: ModelConfig) -> Capabilities:
    """The kind's ``default`` capabilities with the model's ``options.capabilities`` over them."""
    override = config.options.get("capabilities") or {}
    known = {f.name for f in dataclasses.fields(Capabilities)}
    if not isinstance(override, dict) or not set(override) <= known:
        raise ValueError(f"model {config.name!r}: options.capabilities takes {', '.join(sorted(known))}")
    return dataclasses.replace(default, **{name: bool(value) for name, value in override.items()})


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    kind: str
    base_url: str
    model: str
    api_key: str | None
    headers: dict[str, str]
    connect_timeout: float
    first_token_timeout: float
    token_timeout: float
    retries: int
    status_wait: float
    context_window: int | None

    @classmethod
    def from_model(cls, kind: str, config: ModelConfig, context: BackendContext) -> UpstreamConfig:
        if not config.url:
            raise ValueError(f"model {config.name!r}: backend {kind!r} needs `url` (the upstream's base URL)")
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"model {config.name!r}: `url` must be an http(s) URL, got {config.url!r}")
        options, settings = config.options, context.settings
        headers = options.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError(f"model {config.name!r}: options.headers must be a table of strings")
        window = options.get("context_window")
        return cls(
            kind=kind,
            base_url=config.url.rstrip("/"),
            model=config.upstream_model or config.name,
            api_key=config.api_key,
            headers={str(k): str(v) for k, v in headers.items()},
            connect_timeout=float(options.get("connect_timeout", settings.connect_timeout)),
            first_token_timeout=float(options.get("first_token_timeout", settings.first_token_timeout)),
            token_timeout=float(options.get("token_timeout", settings.token_timeout)),
            retries=max(0, int(options.get("retries", settings.upstream_retries))),
            status_wait=float(options.get("status_wait", DEFAULT_STATUS_WAIT)),
            context_window=None if window is None else int(window),
        )
