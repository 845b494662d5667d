"""OpenAI's legacy Completions: ``POST /v1/completions``, prompt in, text out.

Many tools still call it, and llama.cpp's server, vLLM and Ollama's OpenAI layer serve
it. The prompt goes to the model as it is (``ChatRequest.raw_prompt``: no chat template,
no transcript), through the same hub as every request. Streaming sends
``text_completion`` chunks, then (``stream_options.include_usage``) a usage chunk with
empty ``choices``, then ``data: [DONE]``::

    {"id":"cmpl-…","object":"text_completion","created":…,"model":"m",
     "choices":[{"text":"Hel","index":0,"logprobs":null,"finish_reason":null}]}

``logprobs`` (an integer: the alternatives per token) answers in the legacy shape
(``tokens``, ``token_logprobs``, ``top_logprobs`` as ``{token: logprob}``,
``text_offset``). ``echo`` puts the prompt before the answer (its log-probabilities are
not computed: ``echo`` with ``logprobs`` is refused).

Deliberate choices: one prompt per request (a list of several, or token-id prompts, is
refused, as ``n`` / ``best_of`` > 1 are); without ``max_tokens`` the model's default
limit applies (OpenAI's is 16, which cuts most answers off); ``suffix`` (insertion) is
refused.
"""

from __future__ import annotations

import time
from typing import Any, assert_never

from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import ServerSentEvent

from lmstream.completion import Completion
from lmstream.dialects.common import dumps, load_object, sse, validate
from lmstream.dialects.features import MAX_TOP_LOGPROBS, logit_bias
from lmstream.dialects.fields import FieldTable, Unsupported, only
from lmstream.dialects.openai import error_type, finish_reason, usage_json
from lmstream.dialects.openai_requests import StreamOptions
from lmstream.errors import BadRequest
from lmstream.events import (
    Custom,
    Done,
    Error,
    Event,
    MessageDone,
    MessageStart,
    Progress,
    Queued,
    Sources,
    Started,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)
from lmstream.request import ChatRequest, Dialect, Message, RequestContext

__all__ = ["COMPLETION_FIELDS", "CompletionEncoder", "parse_request", "render_completion"]


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    prompt: str | list[Any]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1)
    best_of: int | None = Field(None, ge=1)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    logit_bias: dict[str, Any] | None = None
    user: str | None = None


def _off(value: Any) -> bool:
    return value in (0, 0.0)


COMPLETION_FIELDS = FieldTable.of(
    honoured=CompletionRequest.model_fields,
    unsupported={
        "frequency_penalty": Unsupported("lmstream samples without repetition penalties", _off),
        "presence_penalty": Unsupported("lmstream samples without repetition penalties", _off),
        "suffix": Unsupported("lmstream does not insert text between a prefix and a suffix", only("")),
    },
)


def _prompt(prompt: str | list[Any]) -> str:
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if prompt and all(isinstance(p, str) for p in prompt):
        raise BadRequest("one prompt per request: lmstream returns one choice", param="prompt")
    raise BadRequest("`prompt` must be a string; token-id prompts are not supported", param="prompt")


def parse_request(body: bytes) -> tuple[ChatRequest, bool, bool, str | None]:
    """(request, stream, include_usage, the prompt to echo or None)."""
    data = load_object(body)
    ignored = COMPLETION_FIELDS.check(data)
    req = validate(CompletionRequest, data)
    for name, value in (("n", req.n), ("best_of", req.best_of)):
        if value is not None and value > 1:
            raise BadRequest(f"{name} > 1 is not supported: lmstream returns one choice per request", param=name)
    if req.echo and req.logprobs is not None:
        raise BadRequest("`echo` with `logprobs` is not supported (the prompt's log-probabilities)", param="echo")
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    if len(stop) > 4:
        raise BadRequest("at most 4 stop sequences are allowed", param="stop")
    prompt = _prompt(req.prompt)
    request = ChatRequest(
        messages=(Message("user", prompt),),
        raw_prompt=prompt,
        model=req.model,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=stop,
        seed=req.seed,
        logprobs=req.logprobs,
        logit_bias=logit_bias(req.logit_bias),
        ignored=ignored,
        context=RequestContext(dialect=Dialect.OPENAI, user=req.user),
    )
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return request, req.stream, include_usage, prompt if req.echo else None


class _Offsets:
    """Legacy ``logprobs``: parallel lists, with each token's offset in the text."""

    def __init__(self, start: int) -> None:
        self.at = start

    def json(self, entries: tuple[TokenLogprob, ...] | list[TokenLogprob] | None) -> dict[str, Any] | None:
        if entries is None:
            return None
        offsets = []
        for entry in entries:
            offsets.append(self.at)
            self.at += len(entry.token)
        return {
            "tokens": [e.token for e in entries],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{t.token: t.logprob for t in e.top} for e in entries],
            "text_offset": offsets,
        }


class CompletionEncoder:
    """Internal events → ``text_completion`` SSE chunks, then ``[DONE]``."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool, echo: str | None) -> None:
        self.id = completion_id
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.echo = echo
        self._offsets = _Offsets(len(echo or ""))

    def _chunk(self, text: str, finish: str | None = None, logprobs: dict[str, Any] | None = None) -> ServerSentEvent:
        return sse(dumps(self._object([{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}])))

    def _object(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def encode(self, event: Event) -> list[ServerSentEvent]:
        match event:
            case TextDelta():
                return [self._chunk(event.text, logprobs=self._offsets.json(event.logprobs))]
            case Started():
                return [self._chunk(self.echo)] if self.echo else []
            case Done():
                frames = [self._chunk("", finish_reason(event.finish_reason))]
                if self.include_usage:
                    frames.append(sse(dumps({**self._object([]), "usage": usage_json(event.usage)})))
                frames.append(sse("[DONE]"))
                return frames
            case Error():
                body = {"error": {"message": event.message, "type": error_type(event.code), "param": None, "code": event.code}}
                return [sse(dumps(body))]
            case ToolCallDelta():
                return []  # a raw prompt offers no tools: no backend calls one here
            case Queued() | Progress() | Sources() | ToolProgress() | ToolChunk() | ToolResult() | Custom():
                return []  # the legacy format has no place for the wait or a server-side step
            case MessageStart() | MessageDone():
                return []  # nor for a team's turns
            case Usage():
                return []  # the usage chunk is made from `Done`
            case _:
                assert_never(event)


def render_completion(completion_id: str, model: str, completion: Completion, echo: str | None) -> dict[str, Any]:
    offsets = _Offsets(len(echo or ""))
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": completion.created or int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "text": (echo or "") + completion.text,
                "index": 0,
                "logprobs": offsets.json(completion.logprobs),
                "finish_reason": finish_reason(completion.finish_reason),
            }
        ],
        "usage": usage_json(completion.usage),
    }
