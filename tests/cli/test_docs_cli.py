"""``lmstream docs add|list|search|remove`` against a real server, on real documents."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pexpect

from tests.cli.conftest import Run, cli_env
from tests.rag.corpus import PDF_MIME, html, markdown, need
from tests.support import LiveServer


def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "library").mkdir(parents=True)
    for name in ("heapq", "bisect", "json"):
        shutil.copy(html(f"library/{name}.html"), root / "library" / f"{name}.html")
    shutil.copy(markdown("installation.md"), root / "installation.md")
    shutil.copy(need(PDF_MIME), root / "mime.pdf")
    (root / "broken.pdf").write_bytes(need(PDF_MIME).read_bytes()[:4000])
    (root / "empty.txt").write_text("")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff")  # not a document kind: never uploaded
    return root


def test_add_search_list_remove(lmstream: Run, tmp_path: Path) -> None:
    root = corpus(tmp_path)
    added = lmstream("docs", "add", "pydocs", str(root), "--description", "Python docs")
    assert added.returncode == 1  # two files failed; the rest were added
    assert "created collection pydocs" in added.stderr
    assert f"error: {root / 'broken.pdf'}: broken.pdf: cannot read this PDF" in added.stderr
    assert f"error: {root / 'empty.txt'}: empty.txt: the file is empty" in added.stderr
    assert "pydocs: 5 created, 0 updated, 0 unchanged, 0 duplicate, 2 failed (7 files" in added.stderr

    (root / "broken.pdf").unlink()
    (root / "empty.txt").unlink()
    again = lmstream("docs", "add", "pydocs", str(root))
    assert again.returncode == 0, again.stderr
    assert "pydocs: 0 created, 0 updated, 5 unchanged, 0 duplicate, 0 failed" in again.stderr

    collections = lmstream("docs", "list")
    assert collections.returncode == 0 and "pydocs" in collections.stdout and "Python docs" in collections.stdout
    documents = json.loads(lmstream("docs", "list", "pydocs", "--json").stdout)["data"]
    assert {d["source"] for d in documents} == {
        str(root / "library" / "heapq.html"), str(root / "library" / "bisect.html"), str(root / "library" / "json.html"),
        str(root / "installation.md"), str(root / "mime.pdf"),
    }

    found = lmstream("docs", "search", "pydocs", "pop the smallest item from a heap", "-k", "2")
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("[1] heapq — Heap queue algorithm")
    assert f"{root / 'library' / 'heapq.html'}#" in found.stdout and "[2]" in found.stdout and "[3]" not in found.stdout
    as_json = json.loads(lmstream("docs", "search", "pydocs", "ensurepip", "--json").stdout)
    assert as_json["data"][0]["source"] == str(root / "installation.md") and as_json["mode"] == "lexical"

    removed = lmstream("docs", "remove", "pydocs", str(root / "installation.md"))
    assert removed.returncode == 0 and removed.stderr.startswith("removed doc_")
    assert lmstream("docs", "search", "pydocs", "ensurepip").stderr == "no matching passages\n"
    missing = lmstream("docs", "remove", "pydocs", "nothing.md")
    assert missing.returncode == 1 and missing.stderr == "error: no document 'nothing.md' in collection 'pydocs'\n"

    gone = lmstream("docs", "remove", "pydocs")
    assert gone.returncode == 0 and gone.stderr == "removed collection pydocs\n"
    assert lmstream("docs", "search", "pydocs", "x").stderr == "error: no collection 'pydocs'\n"


def test_add_with_nothing_to_add(lmstream: Run, tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"\x89PNG")
    result = lmstream("docs", "add", "x", str(tmp_path / "pics"))
    assert result.returncode == 1 and "no documents found" in result.stderr


def test_a_terminal_sees_a_progress_bar(cli_server: LiveServer, tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    pages = sorted(html("library").glob("*.html"))[:40]
    for page in pages:
        shutil.copy(page, root / page.name)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "lmstream", "docs", "add", "bar", str(root)],
        env=cli_env(cli_server, TERM="xterm", COLUMNS="120", LINES="30"),
        dimensions=(30, 120),
        timeout=120,
        encoding="utf-8",
    )
    try:
        child.expect(r"adding to bar .* \d+/40")  # the bar, with done/total, while it works
        child.expect_exact("bar: 40 created")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_chat_with_a_collection_prints_the_sources_after_the_answer(lmstream: Run, tmp_path: Path) -> None:
    heapq = html("library/heapq.html")
    assert lmstream("docs", "add", "cited", str(heapq)).returncode == 0
    asked = lmstream("chat", "--collection", "cited", "How do I pop the smallest item from a heap?")
    assert asked.returncode == 0, asked.stderr
    answer, _, sources = asked.stdout.partition("\nSources:\n")
    assert answer.startswith("lmstream streams **every** token.")  # the scripted answer, then the sources
    assert sources.startswith(f"  [1] heapq — Heap queue algorithm · {heapq}")
    assert "tokens" in asked.stderr  # the stats line, as without a collection

    chatted = lmstream("chat", "--collection", "cited", "thanks, that was all")  # not a question
    assert chatted.returncode == 0 and "Sources:" not in chatted.stdout

    interactive = lmstream("chat", input="/collection\n/collection cited\nWhat is heapq.merge?\n/collection off\n")
    assert interactive.returncode == 0, interactive.stderr
    assert "collection: none (available: " in interactive.stderr and "collection: cited" in interactive.stderr
    assert interactive.stdout.count("Sources:") == 1 and "[1] heapq" in interactive.stdout

    missing = lmstream("chat", "--collection", "nope", "What is a heap?")
    assert missing.returncode == 1 and missing.stderr == "error: no collection 'nope'\n"
