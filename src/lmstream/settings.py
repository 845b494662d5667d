"""Settings: command-line flags > ``LMSTREAM_*`` environment > TOML file > defaults.

The TOML file is named by ``--config`` or ``LMSTREAM_CONFIG``. Nested values in the
environment use ``__`` (``LMSTREAM_MODELS='[...]'`` takes JSON). A minimal file::

    port = 8000
    api_keys = ["sk-local-1"]
    admin_keys = ["sk-local-admin"]
    default_model = "gemma3-270m"

    [limits]                        # per API key; a stored key may set its own
    requests_per_minute = 60
    concurrent_streams = 4
    tokens_per_minute = 200000

    [[models]]
    name = "gemma3-270m"            # the packaged GGUF when path is empty
    backend = "llama_cpp"

    [[models]]
    name = "fast"
    backend = "scripted"
    options = { text = "Hello there!", tokens_per_second = 50 }

    [[tools]]                       # a Python tool: a function, a Tool object or a factory
    function = "mypackage.tools:lookup"

    [[mcp_servers]]                 # an MCP server's tools appear as mcp:files/<tool>
    name = "files"
    command = ["python", "-m", "files_server"]

The tables (``ModelConfig``, ``LimitsConfig``, ...) are defined in ``settings_sections.py``
and imported from here; the sources' precedence and list parsing are in
``settings_sources.py``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from lmstream.settings_sections import (
    DEFAULT_GREETING,
    DEFAULT_MODEL_NAME,
    EmbeddingModelConfig,
    FastPathRule,
    LimitsConfig,
    McpServerConfig,
    ModelConfig,
    ProfileConfig,
    RagConfig,
    ToolConfig,
)
from lmstream.settings_sources import checked_keys, find_config_file, settings_sources, split_list

# The sections are defined in settings_sections.py and imported from here, with Settings.
__all__ = [
    "DEFAULT_GREETING",
    "DEFAULT_MODEL_NAME",
    "EmbeddingModelConfig",
    "FastPathRule",
    "LimitsConfig",
    "McpServerConfig",
    "ModelConfig",
    "ProfileConfig",
    "RagConfig",
    "Settings",
    "ToolConfig",
    "load_settings",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LMSTREAM_", env_nested_delimiter="__", extra="ignore")
    _toml_file: ClassVar[Path | None] = None

    host: str = "127.0.0.1"
    port: int = 8000
    allow_insecure_bind: bool = Field(
        False, description="Allow binding a non-loopback address with no API keys configured."
    )
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_key_file: Path | None = None
    # Keys that see every user's streams and conversations and may manage keys.
    admin_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    # The token in a stream's `events_url` (EventSource cannot send a key) lives this long.
    stream_token_ttl: float = Field(900.0, gt=0, le=86_400)
    # The HMAC secret of those tokens; empty: a random one kept in data_dir (owner-only).
    # Instances that share streams need the same secret.
    token_secret: str | None = None

    # Shortcuts for the one-model case; ignored when `models` is given.
    backend: str = "llama_cpp"
    model: str | None = Field(None, description="GGUF path for the default llama_cpp model.")
    upstream_url: str | None = Field(None, description="Base URL when `backend` is an upstream kind.")
    upstream_model: str | None = Field(None, description="The upstream's model name (also ours).")
    default_model: str | None = None
    models: list[ModelConfig] = Field(default_factory=list)

    default_max_tokens: int | None = Field(
        None,
        ge=1,
        description="Token limit of a request that sets none, for every model without its own "
        "(default: 512 for the embedded model, the upstream's own limit for upstreams).",
    )

    # The embedded model.
    n_ctx: int = Field(4096, description="Context window of each embedded-model request (its KV cells).")
    n_parallel: int = Field(
        4, ge=1, description="Requests the embedded model decodes together (KV memory: n_parallel x n_ctx cells)."
    )
    n_threads: int | None = None
    n_batch: int = Field(64, description="Tokens per decode step of the embedded model, at most.")
    queue_size: int = Field(16, description="Requests that may wait for an embedded-model slot; more get 503.")
    flash_attn: bool = Field(
        False, description="Flash attention (off: answers do not depend on what else is decoded in the same batch)."
    )
    pad_batches: bool = Field(
        True,
        description="Decode three generating requests as four (a throwaway fourth row): llama.cpp's CPU kernels "
        "compute four rows in one tile, three row by row (off: three answers as each alone, ~20% slower steps).",
    )

    # Streams.
    heartbeat_interval: float = 15.0
    grace_period: float = 10.0
    retention: float = 300.0
    replay_buffer: int = 10_000

    # Upstream timeouts (seconds).
    connect_timeout: float = 10.0
    first_token_timeout: float = 120.0
    token_timeout: float = 60.0
    upstream_retries: int = 1

    # Conversations, profiles, fast path (lmstream.conversations).
    store: Literal["sqlite", "none"] = Field(
        "sqlite", description="Where native conversations are kept: sqlite (data_dir/lmstream.db) or none."
    )
    database_url: SecretStr | None = Field(
        None,
        description="postgresql://user:password@host:port/dbname: keep conversations in PostgreSQL "
        "(shared by every instance that names it) instead of SQLite. Secret: never printed.",
    )
    database_pool_size: int = Field(10, ge=1, description="Connections each instance keeps to PostgreSQL.")
    conversation_titles: bool = True

    # Several instances (lmstream.cluster): streams on Redis, any instance serves any stream.
    redis_url: SecretStr | None = Field(
        None,
        description="redis://[user:password@]host:port/db (or rediss://, unix://): keep every stream's "
        "events in Redis so that any instance sharing it can resume, follow and stop any stream, "
        "and share the keys' limits. Secret: never printed.",
    )
    redis_prefix: str = Field("lmstream", description="Prefix of every Redis key (several deployments, one Redis).")
    instance_id: str | None = Field(
        None,
        description="This instance's name in the cluster; stable across restarts "
        "(default: host name and port, plus /N for worker N).",
    )
    instance_ttl: float = Field(
        3.0, gt=0, description="Seconds without a heartbeat after which an instance counts as lost."
    )
    workers: int = Field(1, ge=1, description="Server processes sharing the port (needs redis_url when > 1).")
    profiles: list[ProfileConfig] = Field(default_factory=list)
    default_profile: str | None = None
    fast_path: list[FastPathRule] = Field(default_factory=lambda: [DEFAULT_GREETING.model_copy()])

    # Server-side tools and MCP (lmstream.tools).
    tools: list[ToolConfig] = Field(default_factory=list)
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    tool_timeout: float = Field(60.0, gt=0, description="Seconds a tool may run (a tool may set its own).")
    tool_max_output: int = Field(
        1_000_000, ge=1000, description="Characters of result (and of chunks) kept per tool run."
    )
    tool_progress_interval: float = Field(
        0.1, ge=0, description="Seconds between progress events of a run (stage changes, 100% always pass)."
    )
    mcp_endpoint: bool = Field(True, description="Serve lmstream's tools over MCP at /mcp.")
    tool_rounds: int = Field(
        8, ge=1, le=100, description="Rounds of server-side tool calls a streamed answer may make before it must answer."
    )
    # Limits on what a client may send (issue 14; lmstream.http.guard, lmstream.http.bounds).
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest request body (413 beyond).")
    max_messages: int = Field(1000, ge=1, description="Most messages in one request.")
    max_stop_sequences: int = Field(16, ge=0, description="Most stop sequences in one request.")
    max_stop_chars: int = Field(200, ge=1, description="Longest stop sequence (characters).")
    max_images: int = Field(8, ge=0, description="Most images in one request.")
    max_image_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Largest image (decoded bytes).")
    # Connections (lmstream.server): applied by `lmstream serve`.
    max_header_bytes: int = Field(32 * 1024, ge=1024, description="Largest request head (431 beyond).")
    header_timeout: float = Field(10.0, gt=0, description="Seconds a connection may take to send its headers.")
    body_timeout: float = Field(30.0, gt=0, description="Seconds a request body may pause between chunks.")
    keep_alive_timeout: float = Field(5.0, gt=0, description="Seconds an idle keep-alive connection stays open.")
    max_connections: int | None = Field(
        None, ge=16, description="Open connections at most (default: the file limit less a reserve)."
    )
    # Browsers: origins allowed to call the API from their pages (CORS); host names
    # accepted, besides loopback names and IP addresses, when no API key is set.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # What the operator sees: one JSON line per request; OpenTelemetry spans over OTLP/HTTP.
    access_log: bool = True
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint; tracing is off when unset.")
    # A damaged conversation database: keep serving with the store read-only, or refuse to start.
    store_on_damage: Literal["read_only", "refuse"] = "read_only"

    # Documents, retrieval and embeddings (lmstream.rag).
    rag: RagConfig = Field(default_factory=RagConfig)
    embedding_models: list[EmbeddingModelConfig] = Field(default_factory=list)

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".local" / "share" / "lmstream")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "lmstream")
    log_level: str = "info"

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any, info: ValidationInfo) -> Any:
        return checked_keys(value, info.field_name or "api_keys")

    @field_validator("token_secret")
    @classmethod
    def _secret_not_blank(cls, value: str | None) -> str | None:
        if value is not None and len(value.strip()) < 16:
            raise ValueError("token_secret must be at least 16 characters (or unset: one is made for you)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return settings_sources(settings_cls, init_settings, env_settings, cls._toml_file)

    # Derived views -----------------------------------------------------------------

    def resolved_models(self) -> list[ModelConfig]:
        if self.models:
            return list(self.models)
        if self.backend == "llama_cpp":
            name = DEFAULT_MODEL_NAME if self.model is None else Path(self.model).stem
            return [ModelConfig(name=name, backend="llama_cpp", path=self.model)]
        name = self.upstream_model or self.backend
        return [ModelConfig(name=name, backend=self.backend, url=self.upstream_url, upstream_model=self.upstream_model)]

    def max_tokens_default(self, config: ModelConfig, fallback: int | None) -> int | None:
        """The token limit of a request to model ``config`` that sets none."""
        return config.default_max_tokens or self.default_max_tokens or fallback

    def resolved_default_model(self) -> str:
        return self.default_model or self.resolved_models()[0].name

    def all_api_keys(self) -> list[str]:
        """Keys from ``api_keys``, ``admin_keys`` and ``api_key_file`` (blank lines and
        ``#`` comments skipped); a key file with no key in it is an error, not "no keys"."""
        keys = [*self.api_keys, *self.admin_keys]
        if self.api_key_file is not None:
            found = [
                line.strip()
                for line in self.api_key_file.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
            if not found:
                raise ValueError(f"api_key_file {self.api_key_file} holds no key")
            keys.extend(found)
        return keys

    def is_loopback(self) -> bool:
        if self.host in ("localhost", ""):
            return self.host == "localhost"
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings from flags (``overrides``, None values dropped), env and TOML."""
    toml = find_config_file(config_file)

    class _FileSettings(Settings):
        _toml_file: ClassVar[Path | None] = toml

    values = {k: v for k, v in overrides.items() if v is not None}
    loaded = _FileSettings(**values)
    return Settings.model_validate(loaded.model_dump())
