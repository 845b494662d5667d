"""Several lmstream instances as one: streams on Redis, any instance serves any stream.

``open_coordinator(settings)`` is what the app calls: with ``redis_url`` a started
``RedisCoordinator`` (``coordinator.py``: the hub's ``Coordinator`` seam on Redis),
without it the in-process ``LocalCoordinator`` — ``make run`` needs no Redis, and a
single instance keeps its in-memory path unchanged. ``instance_name`` is this
instance's id, stable across restarts (the conversation store records it on the
answers an instance writes, so that a survivor can mark a dead instance's answers
``interrupted``).

redis-py is the ``redis`` extra; it is imported only when ``redis_url`` is set.
"""

from __future__ import annotations

import socket

from lmstream.hub.coordinator import Coordinator, LocalCoordinator
from lmstream.settings import Settings

__all__ = ["instance_name", "open_coordinator"]


def instance_name(settings: Settings) -> str:
    """``settings.instance_id``, else ``<host name>:<port>`` (a worker's has ``/N``)."""
    return settings.instance_id or f"{socket.gethostname()}:{settings.port}"


async def open_coordinator(settings: Settings) -> Coordinator:
    """The coordinator the settings ask for, started."""
    if settings.redis_url is None:
        return LocalCoordinator(replay_buffer=settings.replay_buffer, instance_id=instance_name(settings))
    try:
        from lmstream.cluster.coordinator import RedisCoordinator
    except ImportError as exc:  # redis-py is the `redis` extra
        raise RuntimeError("redis_url needs the Redis client: pip install 'lmstream[redis]'") from exc
    coordinator = RedisCoordinator(
        settings.redis_url.get_secret_value(),
        instance_id=instance_name(settings),
        prefix=settings.redis_prefix,
        ttl=settings.instance_ttl,
        replay_buffer=settings.replay_buffer,
        retention=settings.retention,
    )
    await coordinator.start()
    return coordinator
