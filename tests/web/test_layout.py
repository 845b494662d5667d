"""Phone-sized screens, themes and keyboard use."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import LiveServer
from tests.web.chat import ChatPage

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    yield context.new_page()
    context.close()


def _overflows(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth"))


def test_a_phone_gets_a_drawer_and_nothing_overflows(phone: Page, server: LiveServer) -> None:
    chat = ChatPage(phone).open(server.url)
    expect(phone.locator("#new-chat")).not_to_be_in_viewport()  # the drawer starts closed
    expect(phone.locator("#input")).to_be_in_viewport()
    chat.pick_model("markdown")
    chat.send("A long answer with code on a small screen")
    chat.wait_status("complete")
    assert not _overflows(phone)
    expect(phone.locator("#model")).to_be_in_viewport()
    expect(phone.locator("#profile")).to_be_in_viewport()

    phone.click("#open-sidebar")
    expect(phone.locator("#new-chat")).to_be_in_viewport()
    expect(phone.locator("#open-sidebar")).to_have_attribute("aria-expanded", "true")
    phone.keyboard.press("Escape")
    expect(phone.locator("#open-sidebar")).to_have_attribute("aria-expanded", "false")
    phone.click("#open-sidebar")
    phone.locator("a.conv").first.click()
    expect(phone.locator("#open-sidebar")).to_have_attribute("aria-expanded", "false")
    assert not _overflows(phone)


def test_the_theme_toggle_switches_and_is_remembered(page: Page, server: LiveServer) -> None:
    ChatPage(page).open(server.url)
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "light")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.get_by_role("button", name="Switch to dark theme").click()
    expect(html).to_have_attribute("data-theme", "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("button", name="Switch to light theme")).to_be_visible()


def test_the_keyboard_reaches_everything_in_order(page: Page, server: LiveServer) -> None:
    # a conversation of its own, and the list drawn, before tabbing into it (the test
    # once ran before the sidebar had loaded: a race, not a focus bug)
    httpx.post(server.url + "/v1/conversations", json={"title": "Tab target"}).raise_for_status()
    ChatPage(page).open(server.url)
    expect(page.locator(".conv").first).to_be_visible()
    page.locator("#new-chat").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "conv"
    page.locator("#input").focus()
    page.keyboard.press("Tab")  # the send button is disabled while the box is empty
    assert page.evaluate("document.activeElement.id") == "stream-toggle"
    page.keyboard.press("Space")
    expect(page.locator("#stream-toggle")).not_to_be_checked()


def test_a_failed_generation_says_what_went_wrong(chat: ChatPage, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("failing")
    chat.send("This one breaks halfway")
    chat.wait_status("error")
    answer = chat.assistant()
    expect(answer.locator(".badge")).to_have_text("Error")
    expect(answer.locator(".msg__notice")).to_contain_text("scripted failure after 3 tokens")
    assert chat.answer_text().strip() == "one two three"


def test_scrolling_up_pauses_auto_scroll_until_jump_to_latest(chat: ChatPage, page: Page, server: LiveServer) -> None:
    page.set_viewport_size({"width": 480, "height": 360})
    chat.open(server.url)
    chat.pick_model("long")
    chat.send("Write enough to scroll")
    thread = page.locator("#thread")

    def distance_from_bottom() -> float:
        return float(thread.evaluate("t => t.scrollHeight - t.scrollTop - t.clientHeight"))

    chat.poll(chat.answer_text, until=lambda text: "long040" in text)
    assert thread.evaluate("t => t.scrollHeight > t.clientHeight + 100"), "the answer overflows"
    assert distance_from_bottom() < 5, "it follows the answer"
    thread.hover()
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(300)
    top = thread.evaluate("t => t.scrollTop")
    chat.poll(chat.answer_text, until=lambda text: "long055" in text)
    assert thread.evaluate("t => t.scrollTop") == top, "it stays where the reader is"
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_visible()
    jump.click()
    expect(jump).to_be_hidden()
    chat.poll(chat.answer_text, until=lambda text: "long065" in text)
    page.wait_for_timeout(300)
    assert distance_from_bottom() < 5, "and follows again after the jump"
    page.click("#stop")
    chat.wait_status("stopped")
