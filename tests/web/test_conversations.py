"""History that is always there: the sidebar, reloads, rename, search, delete, API keys."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.support import LiveServer, scripted
from tests.web.chat import ChatPage

pytestmark = pytest.mark.browser


def test_conversations_survive_a_reload(chat: ChatPage, page: Page, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("quick")
    chat.send("Plan a trip to Lisbon")
    chat.wait_status("complete")
    chat.send("And then on to Porto?")
    chat.wait_status("complete", index=1)
    expect(page).to_have_url(re.compile(r"#/c/.+"))
    conversation_id = page.url.split("#/c/")[1]
    stored = httpx.get(f"{server.url}/v1/conversations/{conversation_id}", timeout=5).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]

    # A fresh visit: the conversation is in the sidebar and opens with its messages.
    page.goto(server.url)
    link = page.locator(f'a.conv[data-id="{conversation_id}"]')
    expect(link).to_contain_text("Lisbon")
    expect(page.locator(".msg")).to_have_count(0)
    link.click()
    expect(page.locator(".msg--user .msg__bubble")).to_have_text(["Plan a trip to Lisbon", "And then on to Porto?"])
    expect(page.locator(".msg--assistant .msg__content")).to_have_text(["Short and sweet answer."] * 2)
    expect(page.locator(".msg--assistant").first).to_have_attribute("data-status", "complete")
    expect(link).to_have_attribute("aria-current", "page")
    expect(page.locator("#title")).to_contain_text("Lisbon")
    expect(page.locator(".msg--assistant .msg__meta").first).to_contain_text("quick")

    # New chat empties the view; the old one stays listed.
    page.click("#new-chat")
    expect(page.locator(".msg")).to_have_count(0)
    expect(page.locator("#title")).to_have_text("New chat")
    expect(link).to_be_visible()


def test_sidebar_search_rename_and_delete(page: Page, server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url, timeout=5)
    alpha = api.post("/v1/conversations", json={"title": "Alpha sidebar notes"}).json()
    beta = api.post("/v1/conversations", json={"title": "Beta sidebar ideas"}).json()
    ChatPage(page).open(server.url)
    titles = page.locator("a.conv .conv__title")
    expect(titles.filter(has_text="sidebar")).to_have_count(2)

    page.fill("#search", "alpha side")
    expect(titles).to_have_text(["Alpha sidebar notes"])
    page.fill("#search", "")
    expect(titles.filter(has_text="sidebar")).to_have_count(2)

    # Row actions show on hover (or keyboard focus), as a person would find them.
    page.locator(".conv-item", has_text="Beta sidebar ideas").hover()
    page.get_by_role("button", name="Rename “Beta sidebar ideas”").click()
    rename = page.get_by_role("textbox", name="New title")
    rename.fill("Gamma sidebar plans")
    rename.press("Enter")
    expect(titles.filter(has_text="Gamma sidebar plans")).to_have_count(1)
    assert api.get(f"/v1/conversations/{beta['id']}").json()["title"] == "Gamma sidebar plans"

    page.locator("a.conv", has_text="Alpha sidebar notes").focus()
    page.keyboard.press("Tab")  # → rename
    page.keyboard.press("Tab")  # → delete
    expect(page.get_by_role("button", name="Delete “Alpha sidebar notes”")).to_be_focused()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(titles.filter(has_text="Alpha sidebar notes")).to_have_count(0)
    assert api.get(f"/v1/conversations/{alpha['id']}").status_code == 404


def test_a_message_sent_before_the_first_view_is_up_is_sent_once_it_is(
    chat: ChatPage, page: Page, server: LiveServer
) -> None:
    """The model list can be shown before the first view is (the sidebar's list is still
    loading): Enter then is kept, not lost, and the message goes once the view is up."""
    held: list[Route] = []
    released = False

    def hold(route: Route) -> None:  # the sidebar's list waits here until released
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route("**/v1/conversations?*", hold)
    with page.expect_request(lambda request: "/v1/conversations?" in request.url):
        page.goto(server.url)
    expect(page.locator("#model option").first).to_be_attached()
    chat.send("Sent early")
    expect(page.locator("#input")).to_have_value("Sent early")  # kept, not gone
    expect(page.locator(".msg--user")).to_have_count(0)
    released = True
    for route in held:
        route.continue_()
    chat.wait_status("complete")
    expect(page.locator(".msg--user .msg__bubble")).to_have_text(["Sent early"])
    expect(page.locator("#input")).to_have_value("")


def test_the_page_asks_for_an_api_key_when_the_server_needs_one(
    browser: Browser, server_factory: Callable[..., LiveServer]
) -> None:
    server = server_factory([scripted("quick", text="Keyed answer.")], api_keys=["s3cret-key"], conversation_titles=False)
    context = browser.new_context()
    page = context.new_page()
    chat = ChatPage(page)
    try:
        page.goto(server.url)  # the page itself is public
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        page.fill("#key-input", "s3cret-key")
        page.press("#key-input", "Enter")
        expect(dialog).to_be_hidden()
        expect(page.locator("#model option")).to_have_text(["quick"])
        chat.send("Is the key sent?")
        chat.wait_status("complete")
        assert chat.answer_text() == "Keyed answer."
        # Kept in this browser: a reload does not ask again.
        page.reload()
        expect(page.locator("#server-status")).to_have_attribute("data-state", "online")
        expect(page.locator("a.conv")).to_have_count(1)
        expect(dialog).to_be_hidden()
    finally:
        context.close()


def test_the_page_shows_each_key_only_its_own_conversations(
    browser: Browser, server_factory: Callable[..., LiveServer]
) -> None:
    """Issue 14, finding 1, in the web chat: two people, two keys, two separate sidebars."""
    keys = ["alice-key-0123456789", "bob-key-0123456789"]
    server = server_factory([scripted("quick", text="Private answer.")], api_keys=keys, conversation_titles=False)
    prompts = {keys[0]: "Alice's secret plan", keys[1]: "Bob's shopping list"}
    for key, prompt in prompts.items():
        made = httpx.post(
            server.url + "/v1/streams",
            json={"prompt": prompt},
            headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
        )
        assert made.status_code == 200
    for key, prompt in prompts.items():
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(server.url)
            page.fill("#key-input", key)
            page.press("#key-input", "Enter")
            expect(page.locator("a.conv")).to_have_count(1)  # waits for the list: exactly its own
            expect(page.locator("a.conv")).to_contain_text(prompt)
        finally:
            context.close()
