"""The ``lmstream`` command: a thin layer over the library (``serve``, ``chat``, ...).

Each command group lives in its own module and registers itself on ``app``.
"""

from __future__ import annotations

import typer

from lmstream.cli import serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="lmstream",
    help="Stream a language model's answer token by token to every kind of client.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """Stream a language model's answer token by token to every kind of client."""


serve.register(app)

for _name in ("chat", "conversations", "docs", "keys", "tools", "team", "bench"):
    try:
        _module = __import__(f"lmstream.cli.{_name}", fromlist=["register"])
    except ModuleNotFoundError as _exc:
        if _exc.name != f"lmstream.cli.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    app()
