"""``lmstream keys create|list|revoke``: API keys kept in the server's store.

These work on the store itself (the data directory of ``--config`` / ``--data-dir``,
like ``lmstream serve``), not through a running server: the first admin key has to
come from somewhere. A server that is running picks changes up within seconds (a
revoked key is refused from then on). The key is printed once, at creation; only its
hash is kept. ``POST /v1/admin/keys`` does the same over HTTP with an admin key.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lmstream.access import key_json, make_key
from lmstream.access.keys import MAX_EXPIRES_IN, MAX_LIMIT, expiry_in
from lmstream.cli.options import fail
from lmstream.errors import StoreUnavailable
from lmstream.settings import load_settings
from lmstream.store import build_store
from lmstream.store.base import now
from lmstream.store.keys import KeyLimits, KeyStore

__all__ = ["keys_app", "parse_duration", "register"]

T = TypeVar("T")

keys_app = typer.Typer(
    name="keys",
    help="Create, list and revoke the API keys kept in the store.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML settings file (or LMSTREAM_CONFIG).")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="The server's data directory.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"not a duration: {text!r} (try 30d, 12h, 15m)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_EXPIRES_IN:
        raise typer.BadParameter(f"{text!r} is more than a century: leave --expires out for a key that never expires")
    return seconds


def _with_store(config: Path | None, data_dir: Path | None, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    try:
        settings = load_settings(config, data_dir=data_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    store = build_store(settings)
    if not isinstance(store, KeyStore):
        raise fail('this server keeps no store (store = "none"): put keys in api_keys / api_key_file instead')

    async def run() -> T:
        await store.open()
        try:
            return await work(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:  # unreachable, damaged (read-only, or refused)
        raise fail(exc.message) from None


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


@keys_app.command()
def create(
    name: Annotated[str, typer.Argument(help="What the key is for (shown in lists and logs).")],
    owner: Annotated[str | None, typer.Option(help="Whose streams and conversations it reaches [its name].")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Sees everyone's; may manage keys.")] = False,
    models: Annotated[str | None, typer.Option(help="Comma-separated models it may use [all].")] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime: 30d, 12h, 15m [never].")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=1, max=MAX_LIMIT, help="Streams per minute [server default].")] = None,
    concurrent: Annotated[int | None, typer.Option(min=1, max=MAX_LIMIT, help="Streams at once [server default].")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", min=1, max=MAX_LIMIT, help="Tokens per minute [server default].")] = None,
    json_: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Make a key and print it (this is the only time it is shown)."""
    if not name.strip() or (owner is not None and not owner.strip()):
        raise typer.BadParameter("a key's name and owner cannot be blank")
    allowed = None if models is None else tuple(m.strip() for m in models.split(",") if m.strip())
    key, record = make_key(
        name.strip(),
        owner=owner.strip() if owner else None,
        admin=admin,
        models=allowed,
        limits=KeyLimits(rpm, concurrent, tpm),
        expires_at=None if expires is None else expiry_in(parse_duration(expires)),
    )
    _with_store(config, data_dir, lambda store: store.create_key(record))
    if json_:
        _print_json({**key_json(record), "key": key})
        return
    print(key)
    role = "admin key" if admin else "key"
    print(f"{role} {record.id} ({record.prefix}…) for {record.owner}: keep it now, it is not shown again", file=sys.stderr)


@keys_app.command("list")
def list_(
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys.")] = None,
    json_: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The stored keys, newest first (revoked ones included); never the keys themselves."""
    keys = _with_store(config, data_dir, lambda store: store.list_keys(owner=owner))
    if json_:
        _print_json({"data": [key_json(k) for k in keys]})
        return
    table = Table("id", "prefix", "name", "owner", "role", "created", "last used", "state", box=None, pad_edge=False)
    at = now()
    for k in keys:
        state = "revoked" if k.revoked_at else ("expired" if not k.active(at) else "active")
        table.add_row(
            k.id, k.prefix + "…", k.name, k.owner, "admin" if k.admin else "user", k.created_at[:19],
            (k.last_used_at or "")[:19], state,
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@keys_app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...), from `lmstream keys list`.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a key: refused from now on (within seconds by a running server)."""
    revoked = _with_store(config, data_dir, lambda store: store.revoke_key(key_id, now()))
    if revoked is None:
        raise fail(f"no key {key_id!r}")
    print(f"revoked {revoked.id} ({revoked.prefix}…, {revoked.name})", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app)
