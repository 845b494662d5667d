"""The web chat shows server-side tool calls inline with their live progress, and a
team's answer as one section per member, live and after a reload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from lmstream.settings import ToolConfig
from tests.support import LiveServer, scripted, start_server
from tests.web.chat import ChatPage

pytestmark = pytest.mark.browser

COUNT = {"name": "count", "arguments": {"n": 3, "pace": 0.4}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("web-tools"),
        [
            scripted("tooler", tool_calls=[COUNT], tool_answer="The count said: {results}", tokens_per_second=20),
            scripted("teamer", text="I see it my way, one word at a time.", tokens_per_second=25),
        ],
        tools=[ToolConfig(function="tests.tools.sample_tools:count").model_dump(exclude_none=True)],
        tool_progress_interval=0,
        conversation_titles=False,
    )
    yield live
    live.stop()


def test_a_tool_call_shows_inline_with_its_live_progress(chat: ChatPage, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("tooler")
    chat.page.locator("#tools-switch").click()
    expect(chat.page.locator("#tools-toggle")).to_be_checked()
    chat.send("Count to three")
    card = chat.assistant().locator('.tool-call[data-tool="count"]')
    expect(card).to_have_attribute("data-state", "running")
    expect(card.locator(".tool-call__args")).to_have_text('{"n":3,"pace":0.4}')
    stages = chat.poll(
        lambda: f"{card.get_attribute('data-state')}|{card.locator('.tool-call__stage').inner_text()}",
        until=lambda value: value.startswith("done"),
    )
    running = [s for s in stages if s.startswith("running|counting")]
    assert len(running) >= 2, stages  # the bar moved while the tool ran: 33%, 67%, ...
    expect(card.locator(".tool-call__output")).to_have_text("Number 1. Number 2. Number 3. ")
    expect(card.locator(".tool-call__result")).to_have_text("counted to 3")
    chat.wait_status("complete")
    expect(chat.assistant().locator(".part--text").last).to_have_text("The count said: counted to 3")

    chat.page.reload()  # the stored conversation shows the same steps
    expect(chat.page.locator("#server-status")).to_have_attribute("data-state", "online")
    stored = chat.page.locator('.tool-call[data-tool="count"]')
    expect(stored).to_have_attribute("data-state", "done")
    expect(stored.locator(".tool-call__result")).to_have_text("counted to 3")
    expect(chat.assistant()).to_contain_text("The count said: counted to 3")


def test_a_team_answers_member_by_member(chat: ChatPage, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("teamer")
    chat.page.locator("#team-switch").click()
    expect(chat.page.locator("#team-toggle")).to_be_checked()
    chat.send("Should we ship on Friday?")
    sections = chat.assistant().locator(".team-msg")
    counts = chat.poll(lambda: str(sections.count()), until=lambda n: n == "3")
    assert counts[:3] == ["0", "1", "2"] or counts[:2] == ["1", "2"], counts  # one after another
    chat.wait_status("complete")
    expect(chat.assistant().locator(".team-msg__speaker")).to_have_text(["Optimist", "Skeptic", "Pragmatist"])
    for i in range(3):
        expect(sections.nth(i)).to_have_attribute("data-done", "true")
        expect(sections.nth(i).locator(".part__body")).to_have_text("I see it my way, one word at a time.")

    chat.page.reload()
    expect(chat.page.locator("#server-status")).to_have_attribute("data-state", "online")
    expect(chat.page.locator(".team-msg__speaker")).to_have_text(["Optimist", "Skeptic", "Pragmatist"])
    expect(chat.page.locator("#team-toggle")).to_be_checked()  # the choice is kept in this browser
