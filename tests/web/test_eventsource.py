"""The browser's own ``EventSource`` on a native stream, heartbeats and ids included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.support import LiveServer, scripted, start_server

pytestmark = pytest.mark.browser

COLLECT = """
async (url) => await new Promise((resolve, reject) => {
  const seen = [];
  const source = new EventSource(url);
  source.onmessage = (e) => seen.push(["message", e.data, e.lastEventId]);
  for (const name of ["start", "token", "done"]) {
    source.addEventListener(name, (e) => {
      seen.push([name, e.data, e.lastEventId]);
      if (name === "done") { source.close(); resolve(seen); }
    });
  }
  setTimeout(() => { source.close(); reject(new Error("no done in 20 s: " + JSON.stringify(seen))); }, 20000);
})
"""


@pytest.fixture
def heartbeating(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path, [scripted("s", text="one two three four five six", tokens_per_second=10)], heartbeat_interval=0.02
    )
    yield live
    live.stop()


def test_eventsource_gets_every_event_once_and_nothing_from_heartbeats(page: Page, heartbeating: LiveServer) -> None:
    page.goto(heartbeating.url + "/")
    started = httpx.post(heartbeating.url + "/v1/streams", json={"prompt": "tell me"}).json()
    seen = page.evaluate(COLLECT, started["events_url"])
    assert [name for name, _, _ in seen] == ["start"] + ["token"] * 6 + ["done"]
    assert [int(event_id) for _, _, event_id in seen] == list(range(8))
    tokens = [json.loads(data)["text"] for name, data, _ in seen if name == "token"]
    assert "".join(tokens) == "one two three four five six"


KEY = "browser-key-0123456789"


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(tmp_path, [scripted("s", text="one two three", tokens_per_second=20)], api_keys=[KEY])
    yield live
    live.stop()


def test_eventsource_follows_events_url_with_keys_on_and_no_key_in_the_url(page: Page, keyed: LiveServer) -> None:
    page.goto(keyed.url + "/")
    headers = {"Authorization": f"Bearer {KEY}"}
    started = httpx.post(keyed.url + "/v1/streams", json={"prompt": "tell me"}, headers=headers).json()
    assert KEY not in started["events_url"]
    seen = page.evaluate(COLLECT, started["events_url"])
    assert [name for name, _, _ in seen] == ["start"] + ["token"] * 3 + ["done"]


def test_eventsource_starts_a_stream_with_one_get_and_a_start_token(page: Page, keyed: LiveServer) -> None:
    page.goto(keyed.url + "/")
    headers = {"Authorization": f"Bearer {KEY}"}
    token = httpx.post(keyed.url + "/v1/tokens", json={"scope": "start"}, headers=headers).json()["token"]
    seen = page.evaluate(COLLECT, f"/v1/streams/start?prompt=tell%20me&token={token}")
    assert [name for name, _, _ in seen] == ["start"] + ["token"] * 3 + ["done"]
    stream_id = json.loads(seen[0][1])["id"]
    assert [event_id for _, _, event_id in seen] == [f"{stream_id}.{n}" for n in range(5)]
