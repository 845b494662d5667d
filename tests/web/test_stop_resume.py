"""Stop really stops the model; a dropped connection or a reload loses no token."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.support import LiveServer, scripted
from tests.web.chat import ChatPage
from tests.web.proxy import CuttableProxy
from tests.web.texts import LONG, NUMBERED

pytestmark = pytest.mark.browser


def _model_stats(server: LiveServer, model: str) -> dict[str, int]:
    health = httpx.get(server.url + "/health", timeout=5).json()
    stats: dict[str, int] = next(m for m in health["models"] if m["name"] == model)
    return stats


def test_stop_cancels_the_generation_on_the_server_and_keeps_the_partial_answer(
    chat: ChatPage, page: Page, server: LiveServer
) -> None:
    chat.open(server.url)
    chat.pick_model("long")
    chat.send("Write at length")
    chat.poll(chat.answer_text, until=lambda text: "long005" in text)
    generation = chat.generation_id()
    page.click("#stop")
    chat.wait_status("stopped")
    expect(chat.assistant().locator(".badge")).to_have_text("Stopped")
    expect(page.locator("#send")).to_be_visible()

    state = httpx.get(f"{server.url}/v1/streams/{generation}", timeout=5).json()
    assert state["state"] == "cancelled"
    assert state["finish_reason"] == "cancelled"
    # "cancelled" is recorded once the backend's generator has been closed: nothing is
    # generating any more (the scripted backend only counts tokens while active).
    stats = _model_stats(server, "long")
    assert stats["active"] == 0
    assert stats["tokens_generated"] < 300

    partial = chat.answer_text().strip()
    assert partial and LONG.startswith(partial) and partial != LONG
    # After a reload the conversation still has the partial answer, marked stopped.
    page.reload()
    chat.wait_status("stopped")
    assert chat.answer_text().strip() == partial
    expect(chat.assistant().locator(".badge")).to_have_text("Stopped")
    expect(page.locator(".msg--user .msg__bubble")).to_have_text("Write at length")


def test_escape_in_the_composer_stops_too(chat: ChatPage, page: Page, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("long")
    chat.send("Write at length again")
    chat.poll(chat.answer_text, until=lambda text: "long003" in text)
    page.press("#input", "Escape")
    chat.wait_status("stopped")


def test_a_dropped_connection_resumes_without_a_lost_or_repeated_token(
    chat: ChatPage, page: Page, server: LiveServer
) -> None:
    resumes: list[Request] = []
    page.on("request", lambda r: resumes.append(r) if r.url.endswith("/events") else None)
    with CuttableProxy(server.port) as proxy:
        chat.open(proxy.url)
        chat.pick_model("numbered")
        chat.send("Count through a bad network")
        chat.poll(chat.answer_text, until=lambda text: "w08" in text)
        assert proxy.cut() >= 1
        chat.poll(chat.answer_text, until=lambda text: "w20" in text)
        assert proxy.cut() >= 1  # and once more, later in the answer
        chat.wait_status("complete")
    assert chat.answer_text().strip() == NUMBERED
    assert len(resumes) >= 2
    last_ids = [int(r.headers["last-event-id"]) for r in resumes]
    assert last_ids == sorted(last_ids) and last_ids[0] >= 8


def test_a_reload_mid_answer_picks_the_stream_up_again(chat: ChatPage, page: Page, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("numbered")
    chat.send("Count while I reload")
    chat.poll(chat.answer_text, until=lambda text: "w06" in text)
    page.reload()
    expect(page.locator(".msg--user .msg__bubble")).to_have_text("Count while I reload")
    seen = chat.poll(chat.answer_text, until=lambda text: text.strip() == NUMBERED)
    assert any(text.strip() and text.strip() != NUMBERED for text in seen), "it streamed after the reload"
    chat.wait_status("complete")


def test_a_server_gone_mid_answer_is_explained_and_retried(
    chat: ChatPage, page: Page, server_factory: Callable[..., LiveServer]
) -> None:
    models = [scripted("numbered", text=NUMBERED, tokens_per_second=20)]
    first = server_factory(models, conversation_titles=False)
    chat.open(first.url)
    chat.send("Count until the server dies")
    chat.poll(chat.answer_text, until=lambda text: "w04" in text)
    first.kill()
    notice = chat.assistant().locator(".msg__notice")
    expect(notice).to_contain_text("reconnecting")
    expect(notice).to_contain_text("Can't reach the server", timeout=10_000)
    partial = chat.answer_text()
    # The server comes back, but a restart forgets running generations: the answer is
    # kept as far as it got and marked as cut off.
    server_factory(models, conversation_titles=False, port=first.port)
    notice.get_by_role("button", name="Retry now").click()
    chat.wait_status("interrupted")
    expect(chat.assistant().locator(".badge")).to_have_text("Interrupted")
    assert chat.answer_text().strip() == partial.strip()
    # The restarted server marked the stored answer interrupted too: a reload shows it so.
    page.reload()
    chat.wait_status("interrupted")
    expect(chat.assistant().locator(".badge")).to_have_text("Interrupted")
    assert partial.strip().startswith(chat.answer_text().strip())  # as far as the last flush
    chat.send("Count again")
    chat.wait_status("complete")
    assert chat.answer_text().strip() == NUMBERED


def test_an_unreachable_server_at_startup_is_explained_and_retried(page: Page, server: LiveServer) -> None:
    page.route("**/health", lambda route: route.abort("connectionrefused"))
    page.goto(server.url)
    banner = page.locator("#banner")
    expect(banner).to_contain_text("Can't reach the lmstream server")
    expect(page.locator("#server-status")).to_have_attribute("data-state", "offline")
    page.unroute("**/health")
    banner.get_by_role("button", name="Retry").click()
    expect(page.locator("#server-status")).to_have_attribute("data-state", "online")
    expect(banner).to_be_hidden()
    expect(page.locator("#model option")).not_to_have_count(0)
