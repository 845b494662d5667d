"""A page object for the web chat: what a person does and sees, in test vocabulary."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect

_nonempty = re.compile(r".+")


class ChatPage:
    def __init__(self, page: Page) -> None:
        self.page = page

    def open(self, url: str) -> ChatPage:
        self.page.goto(url)
        expect(self.page.locator("#server-status")).to_have_attribute("data-state", "online")
        return self

    def pick_model(self, name: str) -> None:
        self.page.select_option("#model", name)

    def send(self, text: str) -> None:
        self.page.fill("#input", text)
        self.page.press("#input", "Enter")

    def assistant(self, index: int = -1) -> Locator:
        answers = self.page.locator(".msg--assistant")
        return answers.last if index == -1 else answers.nth(index)

    def answer_text(self, index: int = -1) -> str:
        return self.assistant(index).locator(".msg__content").inner_text()

    def wait_status(self, status: str, index: int = -1, timeout: float = 20_000) -> None:
        expect(self.assistant(index)).to_have_attribute("data-status", status, timeout=timeout)

    def generation_id(self, index: int = -1) -> str:
        locator = self.assistant(index)
        expect(locator).to_have_attribute("data-generation-id", _nonempty)
        value = locator.get_attribute("data-generation-id")
        assert value
        return value

    def poll(self, read: Callable[[], str], until: Callable[[str], bool], timeout: float = 20) -> list[str]:
        """Read repeatedly until ``until`` holds; every distinct value seen, in order."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = read()
            if not seen or value != seen[-1]:
                seen.append(value)
            if until(value):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"timed out; last values: {seen[-3:]!r}")

