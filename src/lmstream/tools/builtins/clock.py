"""``time``: the current date and time in an IANA time zone (``Europe/Paris``, ``UTC``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lmstream.tools.base import ToolError
from lmstream.tools.decorator import tool

__all__ = ["clock"]


@tool(name="time")
def clock(timezone: str = "UTC") -> dict[str, Any]:
    """The current date and time in an IANA time zone such as "Europe/Paris",
    "America/New_York" or "UTC" (the default)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris'") from None
    now = datetime.now(zone)
    offset = now.utcoffset()
    return {
        "timezone": timezone,
        "iso": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M:%S"),
        "weekday": now.strftime("%A"),
        "utc_offset": now.strftime("%z") if offset is not None else "+0000",
        "unix": int(now.timestamp()),
    }
