"""The README's "Answers from your documents", followed on the real embedded model:
add a folder of documents, then get a streamed answer with its numbered sources from
the CLI, the API and the web page. (Answers are cut at 48 tokens by the server's
profile, to keep the run short; everything else is as the README says.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse
from playwright.sync_api import Page, expect

from tests.rag.corpus import html
from tests.support import LiveServer, start_server
from tests.web.chat import ChatPage

pytestmark = [pytest.mark.embedded, pytest.mark.browser]
QUESTION = "How do I pop the smallest item from a heap?"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("my-docs")
    for name in ("heapq", "bisect", "json"):
        shutil.copy(html(f"library/{name}.html"), root / f"{name}.html")
    return root


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("readme-docs"),
        None,  # the embedded default model
        backend="llama_cpp",
        n_threads=2,
        profiles=[{"name": "chat", "max_tokens": 48, "temperature": 0}],
        conversation_titles=False,
        timeout=120,
    )
    yield server
    server.stop()


def lmstream(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LMSTREAM_URL": server.url}
    return subprocess.run(
        [sys.executable, "-m", "lmstream", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_a_folder_of_documents_then_cited_answers_from_the_cli_the_api_and_the_web_page(
    embedded: LiveServer, folder: Path, page: Page
) -> None:
    added = lmstream(embedded, "docs", "add", "pydocs", str(folder))
    assert added.returncode == 0, added.stderr
    assert "pydocs: 3 created" in added.stderr

    # The CLI: the answer streams, then its sources.
    asked = lmstream(embedded, "chat", "--collection", "pydocs", QUESTION)
    assert asked.returncode == 0, asked.stderr
    answer, _, sources = asked.stdout.partition("\nSources:\n")
    assert answer.strip() and sources.startswith("  [1] heapq — Heap queue algorithm")

    # The API: sources first, then the tokens, then done listing the sources again.
    body = {"prompt": QUESTION, "collection": "pydocs"}
    with httpx.Client(base_url=embedded.url, timeout=300) as client:
        with connect_sse(client, "POST", "/v1/streams", json=body, headers={"Accept": "text/event-stream"}) as source:
            events = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
    names = [name for name, _ in events]
    assert names.index("sources") < names.index("token") and names[-1] == "done"
    items = events[names.index("sources")][1]["items"]
    assert items[0]["title"].startswith("heapq") and events[-1][1]["sources"] == items
    assert "".join(d["text"] for name, d in events if name == "token").strip()

    # The web page: pick the collection, ask, see the chips under the answer.
    chat = ChatPage(page).open(embedded.url)
    page.select_option("#collection", "pydocs")
    chat.send(QUESTION)
    chat.wait_status("complete", timeout=300_000)
    chips = chat.assistant().locator(".sources .source__title")
    expect(chips.first).to_have_text(items[0]["title"])
    assert chat.answer_text().strip()
