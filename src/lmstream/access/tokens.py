"""Short-lived, scoped tokens for URLs: what a browser's ``EventSource`` carries instead
of an API key (it cannot send headers, and a real key in a URL ends up in proxy and
server logs, browser history and ``Referer`` headers).

A token is ``<payload>.<mac>``, both base64url: the payload is ``{"k": key id, "s":
scope, "e": expiry (unix seconds)}`` and the mac its HMAC-SHA256 under the server's
secret. Two scopes:

* ``stream:<id>``: read that one stream (``GET /v1/streams/{id}`` and its ``/events``);
  the ``events_url`` of a stream started with a key carries one;
* ``start``: start streams as the key's owner with ``GET /v1/streams/start`` (and
  resume them), for EventSource-only clients; ``POST /v1/tokens`` mints one.

A token never carries admin rights, and it dies with its key: verifying it looks the
key up again (revoked or expired: refused). The secret is ``settings.token_secret``
(instances that share streams set the same) or 32 random bytes kept in
``data_dir/token-secret``, created owner-only (0600).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from lmstream.errors import Unauthorized

__all__ = ["START_SCOPE", "StreamTokens", "TokenClaims", "load_secret", "stream_scope"]

log = logging.getLogger("lmstream.access")

START_SCOPE = "start"
_SECRET_FILE = "token-secret"


def stream_scope(stream_id: str) -> str:
    return "stream:" + stream_id


@dataclass(frozen=True, slots=True)
class TokenClaims:
    key_id: str
    scope: str
    expires: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTokens:
    def __init__(self, secret: bytes, *, ttl: float, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret is too short")
        self._secret = secret
        self.ttl = ttl
        self._clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, key_id: str, scope: str, ttl: float | None = None) -> tuple[str, int]:
        """A token for ``scope`` on behalf of key ``key_id``, and when it expires."""
        expires = int(self._clock() + (self.ttl if ttl is None else ttl))
        payload = _b64(orjson.dumps({"k": key_id, "s": scope, "e": expires}))
        return f"{payload}.{self._mac(payload)}", expires

    def verify(self, token: str, scope: str) -> TokenClaims:
        """The claims of a genuine, unexpired token for exactly ``scope``; ``Unauthorized``
        otherwise (one message for every failure: a forger learns nothing)."""
        payload, _, mac = token.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            raise Unauthorized("invalid or expired token")
        try:
            data = orjson.loads(_unb64(payload))
            claims = TokenClaims(str(data["k"]), str(data["s"]), int(data["e"]))
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            raise Unauthorized("invalid or expired token") from None
        if claims.scope != scope or claims.expires < self._clock():
            raise Unauthorized("invalid or expired token")
        return claims


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """``configured``, else the secret kept in ``data_dir`` (made owner-only on first use)."""
    if configured:
        return configured.encode()
    path = data_dir / _SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o): made owner-only", path, mode)
            path.chmod(0o600)
        secret = path.read_bytes()
        if len(secret) < 32:
            raise ValueError(f"{path} is damaged (shorter than 32 bytes): delete it to make a new one") from None
        return secret
    with os.fdopen(fd, "wb") as file:
        file.write(secrets.token_bytes(32))
    return path.read_bytes()
