"""The web chat in a real browser: tokens stream in, Markdown renders, output stays inert."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.support import LiveServer
from tests.web.chat import ChatPage
from tests.web.texts import CODE, NUMBERED

pytestmark = pytest.mark.browser


def test_tokens_appear_progressively(chat: ChatPage, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("numbered")
    chat.send("Count for me")
    expect(chat.page.locator(".msg--user .msg__bubble")).to_have_text("Count for me")
    seen = chat.poll(chat.answer_text, until=lambda text: text.strip() == NUMBERED)
    intermediate = [text for text in seen if text.strip() not in ("", NUMBERED)]
    # ~60 tokens at 20/s over 3 s, read every 50 ms: many partial states, each a prefix.
    assert len(intermediate) >= 10, seen
    for text in intermediate:
        assert NUMBERED.startswith(text.strip()), text
    lengths = [len(text) for text in seen]
    assert lengths == sorted(lengths), "the answer never shrinks while streaming"
    chat.wait_status("complete")
    meta = chat.assistant().locator(".msg__meta")
    expect(meta).to_contain_text("numbered")
    expect(meta).to_contain_text("tok/s")
    expect(meta).to_contain_text("60 tokens")
    expect(meta).to_contain_text("TTFT")


def test_live_metrics_while_streaming(chat: ChatPage, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("numbered")
    chat.send("Count again")
    chat.poll(chat.answer_text, until=lambda text: "w10" in text)
    assert chat.assistant().get_attribute("data-status") == "streaming"
    expect(chat.assistant().locator(".msg__meta")).to_contain_text("tok/s")
    expect(chat.page.locator("#stop")).to_be_visible()
    chat.wait_status("complete")
    expect(chat.page.locator("#send")).to_be_visible()


def test_markdown_and_code_render_while_streaming(
    chat: ChatPage, server: LiveServer, context: BrowserContext
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    chat.open(server.url)
    chat.pick_model("markdown")
    chat.send("How do we release?")
    answer = chat.assistant()
    # An open ``` fence already renders as a code block while the code streams in.
    def code_while_streaming() -> str:
        code = answer.locator("pre code")
        if not code.count() or answer.get_attribute("data-status") != "streaming":
            return ""
        return code.inner_text()

    seen = chat.poll(code_while_streaming, until=lambda code: code.startswith("def greet"), timeout=15)
    assert CODE.startswith(seen[-1]) and seen[-1] != CODE, "the block grew in place, before the fence closed"
    chat.wait_status("complete")
    expect(answer.locator("h2")).to_have_text("Release plan")
    expect(answer.locator("li")).to_have_count(3)
    expect(answer.locator("li strong")).to_have_text("wheel")
    code = answer.locator("pre code.hljs.language-python")
    expect(code).to_have_count(1)
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    assert code.locator("[class^='hljs-']").count() >= 4
    assert code.inner_text() == CODE
    copy = answer.locator(".copy-btn")
    expect(copy).to_be_visible()
    copy.click()
    expect(copy).to_have_text("Copied")
    assert chat.page.evaluate("navigator.clipboard.readText()") == CODE


def test_html_in_an_answer_is_shown_not_run(chat: ChatPage, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("hostile")
    chat.send("Say something risky")
    chat.wait_status("complete")
    content = chat.assistant().locator(".msg__content")
    # Shown as text…
    expect(content).to_contain_text("<img src=x onerror=")
    expect(content).to_contain_text("<script>window.__pwned='script'</script>")
    # …and inert: no element came out of it, nothing ran, no javascript: link survived.
    assert content.locator("img, script, iframe, [onerror]").count() == 0
    for link in content.locator("a").all():
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
        link.click()
    assert chat.page.evaluate("window.__pwned") is None


def test_streaming_toggle_off_shows_the_whole_answer_when_done(
    chat: ChatPage, page: Page, server: LiveServer
) -> None:
    chat.open(server.url)
    toggle = page.locator("#stream-toggle")
    expect(toggle).to_be_checked()
    page.get_by_text("Stream responses").click()
    expect(toggle).not_to_be_checked()
    chat.pick_model("numbered")
    chat.send("Count quietly")
    answer = chat.assistant()
    expect(answer.locator(".typing")).to_be_visible()
    # While the server streams, the bubble stays empty.
    empty_while_streaming = 0
    while answer.get_attribute("data-status") != "complete":
        text = chat.answer_text()
        if answer.get_attribute("data-status") != "complete":
            assert text == ""
            empty_while_streaming += 1
        page.wait_for_timeout(100)
    assert empty_while_streaming >= 10
    assert chat.answer_text().strip() == NUMBERED
    # The choice is remembered.
    page.reload()
    expect(page.locator("#stream-toggle")).not_to_be_checked()


def test_shift_enter_is_a_newline_and_enter_sends(chat: ChatPage, page: Page, server: LiveServer) -> None:
    chat.open(server.url)
    chat.pick_model("quick")
    page.fill("#input", "first line")
    page.press("#input", "Shift+Enter")
    page.keyboard.type("second line")
    assert page.input_value("#input") == "first line\nsecond line"
    expect(page.locator(".msg--user")).to_have_count(0)
    page.press("#input", "Enter")
    expect(page.locator(".msg--user .msg__bubble")).to_have_text("first line\nsecond line")
    chat.wait_status("complete")
    assert chat.answer_text() == "Short and sweet answer."
