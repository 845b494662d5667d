"""Browser tests: headless Debian Chromium, driven by Playwright, against real servers.

Playwright's own browser download does not work here, so the fixtures launch the
system's ``/usr/bin/chromium`` (``scripts/system-packages.txt``; override with
``LMSTREAM_CHROMIUM``). Without Chromium or a built page the tests are skipped
locally and fail under CI, where ``scripts/bootstrap.sh test`` installs both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from lmstream.http.web import DIST
from tests.support import LiveServer, scripted, start_server
from tests.web.chat import ChatPage
from tests.web.texts import HOSTILE, LONG, MARKDOWN, NUMBERED

CHROMIUM = Path(os.environ.get("LMSTREAM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# Module scope: while Playwright's sync API is alive it owns the thread's event loop, so
# an async test in another module must not run under a browser left open.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium (scripts/bootstrap.sh test does)")
    if not (DIST / "index.html").is_file():
        _unavailable("the web chat is not built: run scripts/build-web.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield page
    assert errors == [], f"errors in the page: {errors}"


@pytest.fixture
def chat(page: Page) -> ChatPage:
    return ChatPage(page)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per test module; each test picks the scripted model it needs."""
    live = start_server(
        tmp_path_factory.mktemp("web"),
        [
            scripted("quick", text="Short and sweet answer.", tokens_per_second=0),
            scripted("numbered", text=NUMBERED, tokens_per_second=20),
            scripted("long", text=LONG, tokens_per_second=10),
            scripted("markdown", text=MARKDOWN, tokens_per_second=25),
            scripted("hostile", text=HOSTILE, tokens_per_second=60),
            scripted("failing", text="one two three four five", tokens_per_second=20, fail_after=3),
        ],
        conversation_titles=False,
    )
    yield live
    live.stop()
