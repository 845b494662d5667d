"""The admin API for stored API keys, and URL tokens for EventSource-only clients.

::

    GET    /v1/admin/keys[?owner=]      → {"data": [key]}          (admin keys only)
    POST   /v1/admin/keys {"name", "owner"?, "admin"?, "models"?, "expires_in"? (s),
                           "limits"?: {"requests_per_minute", "concurrent_streams",
                                       "tokens_per_minute"}}
                                        → 201 key + "key": "lms_…" (shown this once)
    GET    /v1/admin/keys/{id}          → key
    DELETE /v1/admin/keys/{id}          → key, revoked (refused at once here, within
                                          seconds on other instances)
    POST   /v1/tokens {"scope": "start", "ttl"?: s}
                                        → {"token", "scope", "expires_at"} (any key)

    key = {"id", "prefix", "name", "owner", "admin", "models", "limits", "created_at",
           "last_used_at", "expires_at", "revoked_at", "active"}

A ``start`` token lets ``GET /v1/streams/start?prompt=…&token=…`` start (and resume)
streams as the key's owner; it is short-lived, never an admin's, and dies with its key.
Keys from the configuration are not listed (they live in the configuration).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.access import START_SCOPE, Principal, key_json, make_key
from lmstream.access.keys import MAX_EXPIRES_IN, MAX_LIMIT, expiry_in
from lmstream.dialects import native
from lmstream.dialects.common import parse_body
from lmstream.errors import BadRequest, Forbidden, NotFound
from lmstream.http.auth import principal_of
from lmstream.http.endpoint import endpoint
from lmstream.http.state import AppState, app_state
from lmstream.http.streaming import JSON
from lmstream.store.base import now
from lmstream.store.keys import KeyLimits, KeyStore

__all__ = ["routes"]

MAX_TOKEN_TTL = 3600


MAX_MODELS = 256

ModelName = Annotated[str, Field(min_length=1, max_length=200)]


class NewLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=1, le=MAX_LIMIT)
    concurrent_streams: int | None = Field(None, ge=1, le=MAX_LIMIT)
    tokens_per_minute: int | None = Field(None, ge=1, le=MAX_LIMIT)


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"\S")
    owner: str | None = Field(None, min_length=1, max_length=100, pattern=r"\S")
    admin: bool = False
    models: list[ModelName] | None = Field(None, max_length=MAX_MODELS)
    expires_in: int | None = Field(None, ge=60, le=MAX_EXPIRES_IN, description="Seconds until the key expires.")
    limits: NewLimits = Field(default_factory=NewLimits)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["start"] = "start"
    ttl: int | None = Field(None, ge=10, le=MAX_TOKEN_TTL)


def _admin(request: Request) -> tuple[AppState, KeyStore]:
    principal = principal_of(request)
    if not principal.admin:
        raise Forbidden("the admin API needs an admin key (`admin_keys`, or `lmstream keys create --admin`)")
    state = app_state(request)
    store = state.access.keys.store
    if store is None:
        raise NotFound('API keys are not stored on this server (store = "none"): use api_keys in the configuration')
    return state, store


@endpoint(native.error_body)
async def list_keys(request: Request) -> Response:
    _, store = _admin(request)
    keys = await store.list_keys(owner=request.query_params.get("owner") or None)
    return JSON({"data": [key_json(k) for k in keys]})


@endpoint(native.error_body)
async def create_key(request: Request) -> Response:
    state, store = _admin(request)
    body = parse_body(NewKey, await request.body())
    key, record = make_key(
        body.name.strip(),
        owner=body.owner.strip() if body.owner else None,
        admin=body.admin,
        models=None if body.models is None else tuple(body.models),
        limits=KeyLimits(**body.limits.model_dump()),
        expires_at=None if body.expires_in is None else expiry_in(body.expires_in),
    )
    await store.create_key(record)
    state.access.keys.stored(record)
    return JSON({**key_json(record), "key": key}, status_code=201)


async def _stored(request: Request) -> tuple[AppState, KeyStore, str]:
    state, store = _admin(request)
    key_id = request.path_params["key_id"]
    if await store.get_key(key_id) is None:
        raise NotFound(f"no API key {key_id!r}")
    return state, store, key_id


@endpoint(native.error_body)
async def get_key(request: Request) -> Response:
    _, store, key_id = await _stored(request)
    found = await store.get_key(key_id)
    assert found is not None
    return JSON(key_json(found))


@endpoint(native.error_body)
async def revoke_key(request: Request) -> Response:
    state, store, key_id = await _stored(request)
    revoked = await store.revoke_key(key_id, now())
    assert revoked is not None
    state.access.keys.forget(revoked)
    return JSON(key_json(revoked))


@endpoint(native.error_body)
async def create_token(request: Request) -> Response:
    principal: Principal = principal_of(request)
    body = parse_body(NewToken, await request.body() or b"{}")
    token = app_state(request).access.token_for(principal, START_SCOPE, body.ttl)
    if token is None:
        raise BadRequest("this server has no API keys: URLs need no token")
    return JSON({"token": token[0], "scope": body.scope, "expires_at": token[1]}, status_code=201)


routes = [
    Route("/v1/admin/keys", list_keys, methods=["GET"]),
    Route("/v1/admin/keys", create_key, methods=["POST"]),
    Route("/v1/admin/keys/{key_id}", get_key, methods=["GET"]),
    Route("/v1/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/v1/tokens", create_token, methods=["POST"]),
]
