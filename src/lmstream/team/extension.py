"""Team chat as an app extension: ``POST /v1/team/stream``.

    POST /v1/team/stream {"question", "members"?, "rounds"?, "max_tokens"?, "moderator"?,
                          "model"?, "conversation_id"?, "store"?}

``members``: names (``"Skeptic"``: a default member — its persona — or a new voice),
profiles (``{"profile": "code"}``: the profile's system prompt as the persona, its model)
or ``{"name", "persona", "model"}``; the default team (``step.DEFAULT_MEMBERS``) when
omitted. ``model`` is the model of members that name none. ``moderator``: ``true`` for
the default moderator's closing summary, or a member. Every member's model is
checked before the stream (404 naming it).

The answer is a native stream (``/v1/streams`` events, ``Last-Event-ID`` resume at
``/v1/streams/{id}/events``): ``start``, then per message ``message_start {speaker,
round, model}``, ``token``s, ``message_done``, then ``done``. It is kept as a
conversation like any native answer (the question, one assistant message per speaker),
owned by the key's owner and started within the key's limits (``start_stream``).
Without ``Accept: text/event-stream`` the answer is ``202`` with its ``events_url``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lmstream.dialects import native
from lmstream.dialects.common import parse_body
from lmstream.errors import BadRequest
from lmstream.http.admission import start_stream
from lmstream.http.auth import principal_of
from lmstream.http.endpoint import endpoint
from lmstream.http.native import encoder, events_url
from lmstream.http.state import AppState, app_state
from lmstream.http.streaming import JSON, follow_frames, stream_response
from lmstream.profiles import Profiles
from lmstream.request import ChatRequest, Dialect, Message, RequestContext
from lmstream.settings import Settings
from lmstream.team.step import DEFAULT_MEMBERS, MODERATOR, Member, Team, plan_team

__all__ = ["TeamExtension"]

MAX_MEMBERS = 8
DEFAULT_MAX_TOKENS = 256


class MemberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=40)
    persona: str | None = Field(None, max_length=2000)
    model: str | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _named(self) -> MemberBody:
        if self.name is None and self.profile is None:
            raise ValueError("a member needs a `name` or a `profile`")
        return self


class TeamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    members: list[str | MemberBody] | None = Field(None, min_length=1, max_length=MAX_MEMBERS)
    rounds: int = Field(1, ge=1, le=5)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=4096)
    moderator: bool | MemberBody = False
    model: str | None = None
    conversation_id: str | None = None
    store: bool = True


class TeamExtension:
    name = "team"

    def __init__(self, settings: Settings) -> None:
        self.profiles = Profiles.from_settings(settings)

    def routes(self) -> Sequence[BaseRoute]:
        return [Route("/v1/team/stream", endpoint(native.error_body)(self.stream), methods=["POST"])]

    async def start(self, app: AppState) -> None:
        app.hub.planners.append(plan_team)

    async def aclose(self) -> None:
        return None

    def _member(self, raw: str | MemberBody) -> Member:
        if isinstance(raw, str):
            raw = MemberBody(name=raw)
        known = next((m for m in DEFAULT_MEMBERS if raw.name and m.name.lower() == raw.name.lower()), None)
        persona, model = raw.persona or (known.persona if known else None), raw.model
        if raw.profile is not None:
            profile = self.profiles.get(raw.profile)
            persona = persona or profile.system_prompt
            model = model or profile.model
        name = raw.name or str(raw.profile).capitalize()
        return Member(name, persona or f"You are {name}; answer from that point of view.", model)

    def team(self, body: TeamBody) -> Team:
        members = tuple(self._member(m) for m in body.members) if body.members else DEFAULT_MEMBERS
        names = [m.name for m in members]
        if len({n.lower() for n in names}) != len(names):
            raise BadRequest("every member needs a name of its own", param="members")
        moderator = None
        if body.moderator is True:
            moderator = MODERATOR
        elif isinstance(body.moderator, MemberBody):
            moderator = self._member(body.moderator)
        return Team(body.question, members, body.rounds, body.max_tokens, moderator)

    async def stream(self, request: Request) -> Response:
        state = app_state(request)
        body = parse_body(TeamBody, await request.body())
        team = self.team(body)
        _, model = state.router.resolve(body.model)  # the default's own name: no fast path
        for member in (*team.members, *([team.moderator] if team.moderator else [])):
            state.router.resolve(member.model or model)  # ModelNotFound before the stream
        context = RequestContext(dialect=Dialect.NATIVE, store=body.store, requested_model=model)
        chat = ChatRequest(
            messages=(Message("user", body.question),),
            model=model,
            max_tokens=body.max_tokens,
            conversation_id=body.conversation_id,
            context=context,
        ).attach(team)
        generation = await start_stream(request, chat)
        follow_url = events_url(state, principal_of(request), generation.id)
        if "text/event-stream" in request.headers.get("accept", ""):
            frames = follow_frames(generation, encoder(follow_url, generation), grace=state.settings.grace_period)
            return stream_response(frames, heartbeat=state.settings.heartbeat_interval)
        url = f"/v1/streams/{generation.id}"
        body_json = {"id": generation.id, "object": "stream", "model": generation.model, "state": generation.state,
                     "url": url, "events_url": follow_url}  # fmt: skip
        return JSON(body_json, status_code=202, headers={"Location": url})
