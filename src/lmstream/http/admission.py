"""Starting a stream on someone's behalf: ownership, allowed models, limits.

Every route that starts a generation calls ``start_stream(request, chat)`` instead of
``hub.start(chat)``. It stamps the request with its principal (the owner in
``RequestContext.principal``, so the stream, its conversation and whatever else it
makes belong to the key's owner; the whole ``Principal`` attached, for the
preprocessors and planners that need more), lets it through the key's limits
(``RateLimited`` → 429 before any byte) and starts it. ``AccessHooks`` are what the
app installs on the hub: a planner that refuses a model the key may not use (after
profiles and the fast path chose it) and an observer that gives the stream's place
back, with the tokens it used, when it ends.

Background work (``RequestContext.purpose`` other than ``chat``: titles) is started
by its extension straight on the hub and never counts against anyone's limits.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from lmstream.access import Access, Admission, Principal
from lmstream.backends.base import ModelInfo
from lmstream.errors import ModelNotFound
from lmstream.events import Done, Error, Event
from lmstream.fastpath import FASTPATH_MODEL
from lmstream.http.auth import principal_of
from lmstream.http.state import app_state
from lmstream.hub import Plan, RunningStream, StreamHub
from lmstream.request import ChatRequest

__all__ = ["AccessHooks", "start_stream", "usable_models"]


def usable_models(request: Request) -> list[ModelInfo]:
    """The models the request's key may use (what the model lists show it)."""
    principal = principal_of(request)
    return [info for info in app_state(request).router.models() if principal.may_use(info.name)]


async def start_stream(request: Request, chat: ChatRequest) -> RunningStream:
    """``hub.start(chat)`` as the request's principal, within its limits."""
    state = app_state(request)
    principal = principal_of(request)
    admission = await state.access.admit(principal) if chat.context.interactive else None
    context = chat.context
    if context.principal != principal.owner:
        context = replace(context, principal=principal.owner)
    attached = (principal,) if admission is None else (principal, admission)
    chat = chat.attach(*attached, context=context)
    try:
        return await state.hub.start(chat)
    except BaseException:
        if admission is not None:
            await state.access.release(admission, 0)
        raise


class AccessHooks:
    """The hub planner and observer of ``Access`` (installed by ``create_app``)."""

    text_deltas = False  # the admission is released on Done or Error

    def __init__(self, access: Access, hub: StreamHub) -> None:
        self._access = access
        self._hub = hub

    def install(self) -> None:
        self._hub.planners.append(self.allowed_model)
        self._hub.observers.append(self)

    async def allowed_model(self, request: ChatRequest, plan: Plan) -> Plan:
        principal = request.attachment(Principal)
        model = request.model or ""
        if principal is not None and model != FASTPATH_MODEL and not principal.may_use(model):
            raise ModelNotFound(f"model {model!r} not found (or not allowed for this key)", param="model")
        return plan

    def on_event(self, stream: RunningStream, seq: int, event: Event) -> None:
        if type(event) is not Done and type(event) is not Error:
            return
        admission = stream.request.attachment(Admission)
        if admission is None:
            return
        usage = stream.completion.usage
        tokens = 0 if usage is None else usage.prompt_tokens + usage.completion_tokens
        self._hub.spawn(self._access.release(admission, tokens), f"release {stream.id}")
