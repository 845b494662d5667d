"""What every ``lmstream`` command shares: the server options and how a failure ends.

``--url`` (``LMSTREAM_URL``) and ``--api-key`` (``LMSTREAM_API_KEY``) name the server a
client command talks to; ``fail`` prints one ``error: ...`` line on stderr and gives
the ``Exit(1)`` to raise; ``note`` prints a line on stderr (stdout keeps the answer).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

__all__ = ["ApiKeyOption", "UrlOption", "fail", "note"]

UrlOption = Annotated[
    str, typer.Option("--url", envvar="LMSTREAM_URL", help="The lmstream server.", show_default=True)
]
ApiKeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="LMSTREAM_API_KEY", help="API key, if the server requires one.")
]


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned ``Exit(1)``."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
