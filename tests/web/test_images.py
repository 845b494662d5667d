"""The web chat attaches images (picked or pasted) only for a model that accepts them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lmstream.settings import ModelConfig
from tests.support import LiveServer, scripted, start_server
from tests.web.chat import ChatPage

pytestmark = pytest.mark.browser

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    vision = ModelConfig(name="vision", backend="scripted", supports_images=True, options={"text": "A tiny image."})
    live = start_server(tmp_path_factory.mktemp("images"), [vision, scripted("text", text="Words only.")], conversation_titles=False)
    yield live
    live.stop()


def test_an_image_is_attached_and_sent_only_to_a_model_that_accepts_images(
    chat: ChatPage, server: LiveServer, tmp_path: Path
) -> None:
    chat.open(server.url)
    attach = chat.page.locator("#attach")
    chat.pick_model("text")
    expect(attach).to_be_hidden()
    chat.pick_model("vision")
    expect(attach).to_be_visible()
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    chat.page.locator("#image-input").set_input_files(str(image))
    expect(chat.page.locator(".attachment img")).to_have_count(1)
    with chat.page.expect_request(lambda r: r.url.endswith("/v1/streams") and r.method == "POST") as sent:
        chat.send("What is this?")
    body = json.loads(sent.value.post_data or "{}")
    assert body["images"] == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    chat.wait_status("complete")
    expect(chat.assistant().locator(".msg__body, .msg__bubble").first).to_contain_text("A tiny image.")
    expect(chat.page.locator(".attachment")).to_have_count(0)  # sent: the tray is empty again
