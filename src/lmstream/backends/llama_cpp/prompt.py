"""What the embedded model reads: a request rendered to prompt text, then to tokens.

A GGUF with a ``tokenizer.chat_template`` gets its own template (Jinja, rendered the way
llama-cpp-python renders it, with the generation prompt); a base model without one gets
lmstream's plain transcript (``lmstream.prompt``) plus the transcript's stop sequences;
a completion-style request (``raw_prompt``) is read as it is. ``Prompt.tokens`` is
exactly what the model evaluates, so its length is the prompt's token count everywhere
(usage, ``count_prompt_tokens``, the context-window check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lmstream.backends.llama_cpp.model import Model
from lmstream.errors import BadRequest
from lmstream.prompt import TRANSCRIPT_STOPS, transcript_prompt
from lmstream.request import ChatRequest, Message

__all__ = ["Prompt", "PromptRenderer", "render_chat_template"]


def render_chat_template(
    template: str, messages: tuple[Message, ...] | list[Message], *, bos_token: str, eos_token: str
) -> str:
    """Render a GGUF's ``tokenizer.chat_template`` (Jinja) with the generation prompt."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)
    try:
        chat: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        result = formatter(messages=chat)
    except Exception as exc:  # raise_exception() in the template, or a Jinja error
        raise BadRequest(f"the model's chat template refused the messages: {exc}", param="messages") from exc
    return str(result.prompt)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request as the model sees it."""

    text: str
    special: bool  # may contain special tokens (a template's or a raw prompt's markers)
    stops: tuple[str, ...]  # stop sequences the prompt format adds (the transcript's turns)


class PromptRenderer:
    """Renders requests for one loaded model (its template, BOS/EOS) and tokenizes them."""

    def __init__(self, model: Model) -> None:
        self._model = model

    def render(self, request: ChatRequest) -> Prompt:
        if request.raw_prompt is not None:
            return Prompt(request.raw_prompt, True, ())
        model = self._model
        if model.chat_template is not None:
            text = render_chat_template(
                model.chat_template, request.messages, bos_token=model.bos_text, eos_token=model.eos_text
            )
            return Prompt(text, True, ())
        # a structured answer has no transcript stops: its grammar decides where it ends
        stops = () if request.response_format is not None else TRANSCRIPT_STOPS
        return Prompt(transcript_prompt(request.messages), False, stops)

    def tokens(self, prompt: Prompt) -> list[int]:
        """The prompt's tokens, with BOS unless the rendered text already starts with it."""
        bos = self._model.bos_text
        add_bos = not (prompt.special and bos and prompt.text.startswith(bos))
        return self._model.tokenize(prompt.text, add_bos=add_bos, special=prompt.special)
