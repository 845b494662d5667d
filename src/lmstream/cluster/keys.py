"""Where everything lives in Redis: key names, stream entry ids, where Redis is.

Every key starts with ``settings.redis_prefix`` (several deployments can share one
Redis)::

    {p}:s:{stream}:log              the stream's events: a Redis Stream, entry id 1-{seq},
                                    field ``e`` = the event (``lmstream.codec``), ``end`` on
                                    the last one (Done / Error)
    {p}:s:{stream}:meta             hash: owner, boot, model, created, conversation, principal
    {p}:s:{stream}:leasers          set: instances whose readers hold a lease on the stream
    {p}:s:{stream}:lease:{instance} string with a TTL: that instance's lease
    {p}:instances                   set: instances that joined (alive or not yet reaped)
    {p}:i:{instance}:alive          string with a TTL: the heartbeat (value: the boot nonce)
    {p}:i:{instance}:running        set: streams the instance runs (what a survivor ends)
    {p}:i:{instance}:stops          set: "{stream} {reason}" stop requests (the flag)
    {p}:i:{instance}:control        pub/sub channel: the same requests, at once
    {p}:i:{instance}:wake           a stream that wakes the instance's XREAD loop
    {p}:i:{instance}:reaping        string with a TTL: who ends a dead instance's streams

Entry ids are ``1-{seq}``: the sequence number *is* the id, so ``Last-Event-ID`` maps
to an exclusive ``XRANGE``/``XREAD`` start without a lookup, and an append retried
after a failure cannot duplicate an entry (Redis refuses an id not above the top).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Keys", "describe", "entry_id", "seq_of", "text"]


def entry_id(seq: int) -> str:
    """The Redis Stream entry id of event ``seq``; ``0-0`` (before everything) for -1."""
    return "0-0" if seq < 0 else f"1-{seq}"


def text(value: object) -> str:
    """A reply value (bytes: the client does not decode) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def seq_of(entry: object) -> int:
    """The event number of an entry id ``1-{seq}``."""
    return int(text(entry).rpartition("-")[2])


def describe(url: str) -> str:
    """``Redis at host:port`` (never the password), for messages."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"Redis at {parts.path}"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"Redis at {parts.hostname or 'localhost'}:{port}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "lmstream"

    def log(self, stream_id: str) -> str:
        return f"{self.prefix}:s:{stream_id}:log"

    def meta(self, stream_id: str) -> str:
        return f"{self.prefix}:s:{stream_id}:meta"

    def leasers(self, stream_id: str) -> str:
        return f"{self.prefix}:s:{stream_id}:leasers"

    def lease_prefix(self, stream_id: str) -> str:
        return f"{self.prefix}:s:{stream_id}:lease:"

    def lease(self, stream_id: str, instance: str) -> str:
        return self.lease_prefix(stream_id) + instance

    def instances(self) -> str:
        return f"{self.prefix}:instances"

    def alive(self, instance: str) -> str:
        return f"{self.prefix}:i:{instance}:alive"

    def running(self, instance: str) -> str:
        return f"{self.prefix}:i:{instance}:running"

    def stops(self, instance: str) -> str:
        return f"{self.prefix}:i:{instance}:stops"

    def control(self, instance: str) -> str:
        return f"{self.prefix}:i:{instance}:control"

    def wake(self, instance: str) -> str:
        return f"{self.prefix}:i:{instance}:wake"

    def reaping(self, instance: str) -> str:
        return f"{self.prefix}:i:{instance}:reaping"
