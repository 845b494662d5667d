"""What lmstream's server and its app agree on beyond ASGI: ``WRITTEN``.

ASGI's ``send`` is awaited for every message. lmstream's server (``server/exchange.py``)
writes a message to the socket *when ``send`` is called* and returns ``WRITTEN``, an
awaitable with nothing to wait for; only while the socket's buffer is over its
high-water mark does it return an awaitable that waits for the buffer to drain and
then writes. Every ``send`` wrapper of lmstream's middleware hands the server's
awaitable through, so a caller that sees ``WRITTEN`` knows its message is on the wire
without awaiting, and may send from a plain callback: ``StreamResponse`` writes a
stream's events from the hub's log as they are appended, with no task wake-up per
token (``http/streaming.py``). Under another server, or behind a wrapper that is a
coroutine, ``send`` returns something else, and the caller awaits it as ASGI says.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final

__all__ = ["WRITTEN", "Written"]


class Written:
    """An awaitable that is already done (awaiting it returns ``None`` at once)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "WRITTEN"


WRITTEN: Final = Written()
