"""``lmstream docs add|list|search|remove``: collections of documents on a server.

Thin over the REST API (``/v1/collections``) through ``cli.client``, like
``lmstream conversations``. ``add`` walks directories recursively (the kinds the server
reads: text, reST, Markdown, HTML, PDF), uploads each file with its absolute path as
``source`` and shows a progress bar on a terminal. Unchanged files are skipped by the
server (same source, same content hash); a file that fails is reported by name and the
others go on; the exit status is 1 when any file failed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lmstream.cli.client import DEFAULT_URL, Client, ClientError
from lmstream.cli.options import ApiKeyOption, UrlOption, fail
from lmstream.rag.ingest import find_files

__all__ = ["docs_app", "register"]

docs_app = typer.Typer(
    name="docs",
    help="Add documents to collections, list, search and remove them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArgument = Annotated[str, typer.Argument(help="The collection's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
STATUSES = ("created", "updated", "unchanged", "duplicate")


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _console() -> Console:
    return Console(width=200 if not sys.stdout.isatty() else None)


def _ensure_collection(client: Client, name: str, description: str) -> None:
    try:
        client.json("GET", f"/v1/collections/{name}")
    except ClientError as exc:
        if exc.status != 404:
            raise
        client.json("POST", "/v1/collections", json={"name": name, "description": description})
        print(f"created collection {name}", file=sys.stderr)


def _upload(client: Client, name: str, path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        files = {"file": (path.name, handle)}
        result: dict[str, Any] = client.json(
            "POST", f"/v1/collections/{name}/documents", files=files, data={"source": str(path.resolve())}
        )
    return result


@docs_app.command()
def add(
    name: NameArgument,
    paths: Annotated[list[Path], typer.Argument(help="Files and directories (recursively).", exists=True)],
    description: Annotated[str, typer.Option("--description", "-d", help="For a new collection.")] = "",
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Add files to a collection (created if needed); unchanged files are skipped."""
    files = find_files(paths)
    if not files:
        raise fail("no documents found (text, reST, Markdown, HTML or PDF files)")
    counts = dict.fromkeys(STATUSES, 0)
    failures: list[tuple[Path, str]] = []
    results: list[dict[str, Any]] = []
    started, size = time.perf_counter(), 0
    show_bar = sys.stderr.isatty() and not json_
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[file]}"), console=Console(stderr=True), disable=not show_bar, transient=True,
    )
    try:
        with Client(url, api_key, timeout=300.0) as client, progress:
            _ensure_collection(client, name, description)
            task = progress.add_task(f"adding to {name}", total=len(files), file="")
            for path in files:
                progress.update(task, file=path.name)
                try:
                    result = _upload(client, name, path)
                except ClientError as exc:
                    if exc.status is None or exc.status >= 500 or exc.status == 401:
                        raise  # the server is gone or refuses us: stop, not one error per file
                    failures.append((path, exc.message))
                    progress.console.print(f"error: {path}: {exc.message}", highlight=False, markup=False)
                    if not show_bar:
                        print(f"error: {path}: {exc.message}", file=sys.stderr)
                else:
                    counts[result["status"]] += 1
                    size += result["document"]["size"]
                    results.append({"path": str(path), **result})
                progress.advance(task)
    except ClientError as exc:
        raise fail(exc.message) from None
    elapsed = time.perf_counter() - started
    if json_:
        _print_json({"results": results, "errors": [{"path": str(p), "message": m} for p, m in failures]})
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES)
    print(
        f"{name}: {summary}, {len(failures)} failed ({len(files)} files, {size / 1e6:.1f} MB in {elapsed:.1f} s)",
        file=sys.stderr,
    )
    if failures:
        raise typer.Exit(1)


@docs_app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="A collection: list its documents.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="Documents per page.")] = 100,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after a previous page.")] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The collections, or the documents of one (most recently changed first)."""
    try:
        with Client(url, api_key) as client:
            if name is None:
                body = client.json("GET", "/v1/collections")
            else:
                params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
                body = client.json("GET", f"/v1/collections/{name}/documents", params=params)
    except ClientError as exc:
        raise fail(exc.message) from None
    if json_:
        _print_json(body)
        return
    if name is None:
        table = Table("name", "documents", "chunks", "description", "updated", box=None, pad_edge=False)
        for c in body["data"]:
            table.add_row(c["name"], str(c["document_count"]), str(c["chunk_count"]), c["description"], c["updated_at"][:19])
    else:
        table = Table("id", "title", "type", "chunks", "source", box=None, pad_edge=False)
        for d in body["data"]:
            table.add_row(d["id"], d["title"], d["media_type"], str(d["chunk_count"]), d["source"] or "")
    _console().print(table)
    if name is not None and body.get("next_cursor"):
        print(f"more: --cursor {body['next_cursor']}", file=sys.stderr)


@docs_app.command()
def search(
    name: NameArgument,
    query: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many passages.")] = 5,
    mode: Annotated[str | None, typer.Option("--mode", help="lexical, dense or hybrid.")] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The passages of a collection that best match a query."""
    params: dict[str, Any] = {"q": query, "k": k, **({"mode": mode} if mode else {})}
    try:
        with Client(url, api_key) as client:
            body = client.json("GET", f"/v1/collections/{name}/search", params=params)
    except ClientError as exc:
        raise fail(exc.message) from None
    if json_:
        _print_json(body)
        return
    if not body["data"]:
        print("no matching passages", file=sys.stderr)
    for number, hit in enumerate(body["data"], start=1):
        where = " > ".join(part for part in (hit["title"], hit["heading"]) if part)
        print(f"[{number}] {where}  (score {hit['score']:.3f})")
        print(f"    {hit['source'] or hit['document_id']}#{hit['chunk']}")
        snippet = " ".join(hit["text"].split())
        print(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n")


def _find_document(client: Client, name: str, wanted: str) -> str:
    """A document id from an id or a source (a path is matched by its absolute form)."""
    if wanted.startswith("doc_"):
        return wanted
    sources = {wanted, str(Path(wanted).resolve())}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.json("GET", f"/v1/collections/{name}/documents", params=params)
        for document in page["data"]:
            if document["source"] in sources:
                return str(document["id"])
        cursor = page.get("next_cursor")
        if not cursor:
            raise ClientError(f"no document {wanted!r} in collection {name!r}")


@docs_app.command()
def remove(
    name: NameArgument,
    document: Annotated[str | None, typer.Argument(help="A document id or source path; none: the whole collection.")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Remove one document, or a whole collection with all its documents."""
    try:
        with Client(url, api_key) as client:
            if document is None:
                client.request("DELETE", f"/v1/collections/{name}")
                print(f"removed collection {name}", file=sys.stderr)
            else:
                document_id = _find_document(client, name, document)
                client.request("DELETE", f"/v1/collections/{name}/documents/{document_id}")
                print(f"removed {document_id} from {name}", file=sys.stderr)
    except ClientError as exc:
        raise fail(exc.message) from None


def register(app: typer.Typer) -> None:
    app.add_typer(docs_app)
