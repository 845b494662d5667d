"""Answers from documents in the browser: the collection picker, source chips under the
answer (there before the first word, expandable), `[n]` citations that open them, and
the same after a reload, from the stored answer."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.rag.corpus import html
from tests.support import LiveServer, scripted, start_server
from tests.web.chat import ChatPage

pytestmark = pytest.mark.browser

ANSWER = "A heap always pops its smallest item first [1]. The module keeps the invariant for you [2]. Not a source: [9]."
QUESTION = "How do I pop the smallest item from a heap?"


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("web-docs"),
        # 1 s of "reading the prompt" between the sources event and the first token
        [scripted("cited", text=ANSWER, tokens_per_second=12, prompt_delay=1.0)],
        conversation_titles=False,
    )
    with httpx.Client(base_url=live.url, timeout=30) as api:
        assert api.post("/v1/collections", json={"name": "pydocs", "description": "Python docs"}).status_code == 201
        for name in ("heapq", "bisect"):
            path = html(f"library/{name}.html")
            files = {"file": (path.name, path.read_bytes())}
            response = api.post("/v1/collections/pydocs/documents", files=files, data={"source": str(path)})
            assert response.status_code == 201, response.text
    yield live
    live.stop()


def chips_and_text(chat: ChatPage) -> str:
    answer = chat.assistant()
    return f"{answer.locator('.source').count()}|{answer.locator('.msg__content').inner_text()}"


def test_sources_show_before_the_answer_and_citations_open_them(page: Page, docs_server: LiveServer) -> None:
    chat = ChatPage(page).open(docs_server.url)
    picker = page.locator("#collection-picker")
    expect(picker).to_be_visible()
    page.select_option("#collection", "pydocs")
    chat.send(QUESTION)

    # The chips are there before the first word of the answer.
    seen = chat.poll(lambda: chips_and_text(chat), lambda v: v.endswith("[9]."))
    first_with_chips = next(v for v in seen if not v.startswith("0|"))
    assert first_with_chips.split("|", 1)[1] == "", seen[:4]
    chat.wait_status("complete")

    conversation_id = page.url.split("#/c/")[1]
    stored = httpx.get(f"{docs_server.url}/v1/conversations/{conversation_id}", timeout=5).json()
    sources = stored["messages"][1]["sources"]
    assert sources and sources[0]["title"].startswith("heapq")
    assert_sources_shown(chat, page, sources)

    # After a reload the answer comes from the store, with the same chips and links.
    page.reload()
    expect(page).to_have_url(re.compile(f"#/c/{conversation_id}$"))
    chat.wait_status("complete")
    expect(page.locator("#collection")).to_have_value("pydocs")  # the pick is remembered
    assert_sources_shown(chat, page, sources)


def assert_sources_shown(chat: ChatPage, page: Page, sources: list[dict[str, object]]) -> None:
    answer = chat.assistant()
    chips = answer.locator(".sources .source")
    expect(chips.locator(".source__title")).to_have_text([str(s["title"]) for s in sources])
    expect(chips.locator(".source__number")).to_have_text([str(s["number"]) for s in sources])
    # Only the numbers the answer was given are links; [9] stays text.
    cites = answer.locator(".msg__content .cite")
    expect(cites).to_have_text(["[1]", "[2]"])
    expect(answer.locator(".msg__content")).to_contain_text("Not a source: [9].")
    second = chips.nth(1)
    expect(second).not_to_have_attribute("open", "")
    expect(second.locator(".source__snippet")).to_be_hidden()
    cites.nth(1).click()
    expect(second).to_have_attribute("open", "")
    expect(second.locator(".source__snippet")).to_have_text(str(sources[1]["snippet"]))
    expect(second.locator(".source__path")).to_have_text(str(sources[1]["source"]))
    assert cites.nth(1).get_attribute("aria-controls") == second.get_attribute("id")
    # Chips open and close by themselves too (they are <details>).
    first = chips.nth(0)
    first.locator("summary").click()
    expect(first).to_have_attribute("open", "")
    first.locator("summary").click()
    expect(first).not_to_have_attribute("open", "")
    assert page.url.count("#/c/") == 1  # a citation never touches the page's route


def test_no_collection_no_sources(page: Page, docs_server: LiveServer) -> None:
    chat = ChatPage(page).open(docs_server.url)
    page.select_option("#collection", "")
    chat.send(QUESTION)
    chat.wait_status("complete")
    expect(chat.assistant().locator(".source")).to_have_count(0)
    expect(chat.assistant().locator(".cite")).to_have_count(0)  # no sources: [1] is plain text
    expect(chat.assistant().locator(".msg__content")).to_contain_text("smallest item first [1].")
