"""``lmstream conversations list|show|export|delete``: the stored conversations of a server.

Thin over ``lmstream.cli.client`` (the REST API ``/v1/conversations``). ``list`` and
``show`` print for people (a table, the messages) or, with ``--json``, the API's own
JSON; ``export`` writes Markdown or JSON to stdout or a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lmstream.cli.client import DEFAULT_URL, Client, ClientError
from lmstream.cli.options import ApiKeyOption, UrlOption, fail

__all__ = ["conversations_app", "register"]

conversations_app = typer.Typer(
    name="conversations",
    help="List, show, export and delete stored conversations.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

IdArgument = Annotated[str, typer.Argument(help="The conversation id (conv_...).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


@conversations_app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many, newest first.")] = 20,
    query: Annotated[str | None, typer.Option("--query", "-q", help="Only titles containing this.")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after a previous page.")] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The most recently updated conversations."""
    try:
        with Client(url, api_key) as client:
            page = client.conversations(limit=limit, cursor=cursor, query=query)
    except ClientError as exc:
        raise fail(exc.message) from None
    if json_:
        _print_json(page)
        return
    table = Table("id", "title", "messages", "model", "updated", box=None, pad_edge=False)
    for c in page["data"]:
        table.add_row(c["id"], c["title"] or "(untitled)", str(c["message_count"]), c["model"] or "", c["updated_at"][:19])
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    if page["next_cursor"]:
        print(f"more: --cursor {page['next_cursor']}", file=sys.stderr)


@conversations_app.command()
def show(
    conversation_id: IdArgument,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """One conversation with all its messages."""
    try:
        with Client(url, api_key) as client:
            conversation = client.conversation(conversation_id)
    except ClientError as exc:
        raise fail(exc.message) from None
    if json_:
        _print_json(conversation)
        return
    print(f"# {conversation['title'] or '(untitled)'}  [{conversation['id']}]")
    for m in conversation["messages"]:
        who = "you" if m["role"] == "user" else m["role"]
        status = "" if m["status"] == "complete" else f" [{m['status']}]"
        print(f"\n{who}{status}:\n{m['content'].strip()}")
        if m.get("error"):
            print(f"(error: {m['error']})")


@conversations_app.command()
def export(
    conversation_id: IdArgument,
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown or json.")] = "markdown",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """A conversation as a Markdown or JSON document."""
    try:
        with Client(url, api_key) as client:
            document = client.export(conversation_id, fmt)
    except ClientError as exc:
        raise fail(exc.message) from None
    if output is None:
        sys.stdout.write(document)
    else:
        output.write_text(document, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)


@conversations_app.command()
def delete(
    conversation_id: IdArgument,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a conversation and its messages."""
    try:
        with Client(url, api_key) as client:
            client.delete(conversation_id)
    except ClientError as exc:
        raise fail(exc.message) from None
    print(f"deleted {conversation_id}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.add_typer(conversations_app)
