"""The nested tables of lmstream's settings, one pydantic model each.

``[[models]]`` (:class:`ModelConfig`, one routable model), ``[limits]`` (per API key),
``[[profiles]]``, ``[[embedding_models]]``, ``[rag]``, ``[[fast_path]]``, ``[[tools]]``
and ``[[mcp_servers]]``. ``Settings`` (``lmstream.settings``) holds them and is where
callers import them from; each is validated when the settings load, so a bad table is
an error at start-up, never at the first request that needs it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    "ToolConfig",
]

DEFAULT_MODEL_NAME = "gemma3-270m"


class ModelConfig(BaseModel):
    """One routable model: a name (plus aliases) served by one backend instance."""

    name: str
    backend: str = "llama_cpp"
    aliases: list[str] = Field(default_factory=list)
    # llama_cpp: the GGUF (empty = the packaged Gemma 3 270M); upstreams: unused.
    path: str | None = None
    # upstream backends: base URL, the upstream's model name, credentials.
    url: str | None = None
    upstream_model: str | None = None
    api_key: str | None = None
    # The token limit of a request that sets none (None: Settings.default_max_tokens,
    # else the backend's own: 512 for the embedded model, the upstream's for upstreams).
    default_max_tokens: int | None = Field(None, ge=1)
    # backend-specific knobs (scripted: text, tokens_per_second, fail_after, ...).
    options: dict[str, Any] = Field(default_factory=dict)
    # Whether the model takes images (None: the backend kind's default — upstreams pass
    # them on and let the upstream decide, the embedded text model does not take them).
    supports_images: bool | None = None


class LimitsConfig(BaseModel):
    """What one API key may use (None: no limit). With no keys, the limits hold for
    everyone together. Background work (conversation titles) never counts."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=1, description="Streams started per minute.")
    concurrent_streams: int | None = Field(None, ge=1, description="Streams running at once.")
    tokens_per_minute: int | None = Field(None, ge=1, description="Prompt + completion tokens per minute.")



class ProfileConfig(BaseModel):
    """A named profile ("mode"): a system prompt, a model and sampling defaults.

    Request fields override profile values; unset (None) values leave the backend's own
    defaults. With no ``[[profiles]]`` configured, the built-ins ``chat`` and ``code``
    apply (``lmstream.profiles``).
    """

    name: str
    description: str = ""
    system_prompt: str | None = None
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    stop: list[str] = Field(default_factory=list)
    # Retrieval (lmstream.rag.routing): answer from this collection's documents; for
    # "questions" only (greetings take the fast path, other messages are plain chat),
    # "always" or "never".
    collection: str | None = None
    retrieval: Literal["questions", "always", "never"] = "questions"


class EmbeddingModelConfig(BaseModel):
    """A model that turns text into vectors (``lmstream.rag.embedders``): served at
    ``/v1/embeddings`` and ``/api/embed``, and usable for dense retrieval.

    ``kind``: ``minilm`` (all-MiniLM-L6-v2 int8 on onnxruntime, shipped in a package:
    the ``embeddings`` extra), ``llama_cpp`` (a GGUF run with embeddings on; ``path``
    empty = the packaged chat model), ``openai`` / ``ollama`` (an upstream's embeddings
    endpoint at ``url``, as model ``upstream_model``).
    """

    name: str
    kind: str = "minilm"
    path: str | None = None
    url: str | None = None
    upstream_model: str | None = None
    api_key: str | None = None
    # query_prefix / document_prefix (e5-style models), threads, batch size, ...
    options: dict[str, Any] = Field(default_factory=dict)


class RagConfig(BaseModel):
    """Documents and retrieval (``lmstream.rag``)."""

    enabled: bool = True
    # The embedding model (a name from ``embedding_models``) that indexes new documents
    # and embeds queries; None = lexical search only (always available).
    embedder: str | None = None
    chunk_size: int = Field(1000, ge=200, le=20_000)
    chunk_overlap: int = Field(150, ge=0)
    chunk_min_size: int = Field(300, ge=0)
    max_document_bytes: int = Field(50 * 1024 * 1024, ge=1)
    search_k: int = Field(5, ge=1, le=100)
    # The retrieval step of a conversation: how many passages it retrieves, and the most
    # tokens they may take in the prompt (less when the model's context window is tight).
    context_k: int = Field(4, ge=1, le=20)
    context_tokens: int = Field(1200, ge=64)


class FastPathRule(BaseModel):
    """Answer a user message matching ``pattern`` (a case-insensitive regex) with ``answer``."""

    pattern: str
    answer: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"fast_path pattern {value!r} is not a regular expression: {exc}") from None
        return value


class ToolConfig(BaseModel):
    """A server-side tool from configuration (``lmstream.tools``).

    ``function = "module:attr"`` names a ``Tool`` object, a function (made a tool as by
    the ``@tool`` decorator) or a zero-argument factory returning a ``Tool``;
    ``command = [...]`` runs a program per call (arguments as JSON on stdin, its stdout
    is the result, streamed as chunks; killed with its process group on cancel).
    """

    name: str | None = None
    function: str | None = None
    command: list[str] | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    timeout: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> ToolConfig:
        if (self.function is None) == (self.command is None):
            raise ValueError("a [[tools]] entry needs exactly one of `function` or `command`")
        if self.command is not None and not (self.name and self.command):
            raise ValueError("a `command` tool needs a `name` and a non-empty command")
        return self


class McpServerConfig(BaseModel):
    """An MCP server whose tools lmstream offers as ``mcp:<name>/<tool>``: started as a
    subprocess over stdio (``command``) or reached over Streamable HTTP (``url``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    command: list[str] | None = None
    url: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout: float = Field(30.0, gt=0)
    timeout: float | None = Field(None, gt=0, description="Seconds per call (default: tool_timeout).")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None) or self.command == []:
            raise ValueError(f"MCP server {self.name!r} needs exactly one of `command` or `url`")
        return self


# The default fast-path rule (set ``fast_path = []`` to disable it).
DEFAULT_GREETING = FastPathRule(
    pattern=r"^\s*(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening))"
    r"( there)?\s*[!.]*\s*$",
    answer="Hello! How can I help you today?",
)
