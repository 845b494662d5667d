"""Bounds on what one request may ask for, checked before any work is done.

``RequestBounds.preprocess`` is the first hub preprocessor (``BoundsExtension`` is the
first extension), so it sees the request as the client sent it — before history is
added — in every dialect, and refuses it (a 400 in the dialect's shape) before the
backend is opened:

* at most ``max_messages`` messages;
* at most ``max_stop_sequences`` stop sequences of at most ``max_stop_chars``
  characters each (each one is matched against every token: 100,000 of them slowed
  every other stream on the server);
* at most ``max_images`` images of at most ``max_image_bytes`` bytes each, and none
  at all for a model that does not read images (``ModelInfo.supports_images``);
* a prompt that cannot fit the model's context window is refused *without*
  tokenizing it: no tokenizer in use makes tokens longer than ``MAX_CHARS_PER_TOKEN``
  characters, so a prompt with more than ``context_window * MAX_CHARS_PER_TOKEN``
  characters is certainly too long. (The backend counts real tokens for the rest:
  the embedded model tokenizes off the event loop and refuses before prefill.)

The body itself is bounded earlier, while it is read (``http/guard.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute

from lmstream.errors import BadRequest, ContextLengthExceeded
from lmstream.http.state import AppState
from lmstream.hub import StreamHub
from lmstream.request import ChatRequest
from lmstream.settings import Settings

__all__ = ["MAX_CHARS_PER_TOKEN", "BoundsExtension", "RequestBounds"]

# The packaged Gemma 3's longest vocabulary entry is 31 characters (of 262,144); natural
# text averages about 4 characters per token. Twice the longest leaves room for other
# vocabularies, and the bound still refuses a 100 MB prompt in microseconds instead of
# tokenizing it (llama.cpp tokenizes about 0.7 MB/s here).
MAX_CHARS_PER_TOKEN = 64


class RequestBounds:
    def __init__(self, settings: Settings, hub: StreamHub) -> None:
        self.settings = settings
        self.hub = hub

    def check(self, request: ChatRequest) -> None:
        s = self.settings
        if len(request.messages) > s.max_messages:
            raise BadRequest(
                f"{len(request.messages)} messages is more than the {s.max_messages} allowed (`max_messages`)",
                param="messages",
            )
        if len(request.stop) > s.max_stop_sequences:
            raise BadRequest(
                f"{len(request.stop)} stop sequences is more than the {s.max_stop_sequences} allowed",
                param="stop",
            )
        for stop in request.stop:
            if len(stop) > s.max_stop_chars:
                raise BadRequest(
                    f"a stop sequence of {len(stop)} characters is longer than the {s.max_stop_chars} allowed",
                    param="stop",
                )
        backend, model = self.hub.router.resolve(request.model)
        images = [image for message in request.messages for image in message.images]
        if images:
            if not backend.info.supports_images:
                raise BadRequest(
                    f"model {model!r} does not accept images (it reads text only); send text, "
                    "or choose a model that takes images",
                    param="messages",
                )
            if len(images) > s.max_images:
                raise BadRequest(f"{len(images)} images is more than the {s.max_images} allowed", param="messages")
            for image in images:
                if image.size > s.max_image_bytes:
                    raise BadRequest(
                        f"an image of {image.size} bytes is larger than the {s.max_image_bytes} allowed",
                        param="messages",
                    )
        window = backend.info.context_window
        if window:
            chars = sum(len(m.content) for m in request.messages) + len(request.raw_prompt or "")
            if chars > window * MAX_CHARS_PER_TOKEN:
                raise ContextLengthExceeded(
                    f"the prompt has {chars} characters, more than model {model!r} can take in its "
                    f"context window of {window} tokens; shorten it",
                    param="messages",
                )

    async def preprocess(self, request: ChatRequest) -> ChatRequest:
        self.check(request)
        return request


class BoundsExtension:
    """Installs ``RequestBounds`` as the first hub preprocessor."""

    name = "bounds"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bounds: RequestBounds | None = None

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def start(self, app: AppState) -> None:
        self.bounds = RequestBounds(self.settings, app.hub)
        app.hub.preprocessors.insert(0, self.bounds.preprocess)

    async def aclose(self) -> None:
        return None
