"""Issue 14, finding 3: an empty key is an error at start, never "no key".

``--api-key "$UNSET"`` gives ``--api-key ""``; it used to count as a key that turned
nothing on, and the server then listened on 0.0.0.0 with no auth at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from lmstream.settings import Settings, load_settings
from tests.support import free_port


@pytest.mark.parametrize("keys", [[""], ["  "], ["good-key-123", ""], "", " ", "good-key-123,,other-key-456"])
@pytest.mark.parametrize("field", ["api_keys", "admin_keys"])
def test_an_empty_or_blank_key_is_refused(field: str, keys: object) -> None:
    with pytest.raises(ValidationError, match="empty key"):
        Settings(**{field: keys})  # type: ignore[arg-type]


def test_an_empty_key_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSTREAM_API_KEYS", "")
    with pytest.raises(ValidationError, match="empty key"):
        load_settings()


def test_an_empty_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('api_keys = ["real-key-0123", "   "]\n')
    with pytest.raises(ValidationError, match="empty key"):
        load_settings(config)


def test_a_key_file_with_no_key_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# nothing here yet\n\n   \n")
    with pytest.raises(ValueError, match="holds no key"):
        Settings(api_key_file=keys).all_api_keys()


def test_keys_are_stripped_not_refused() -> None:
    assert Settings(api_keys=[" key-with-space "]).api_keys == ["key-with-space"]


def test_serve_with_an_empty_key_on_a_public_address_exits_before_listening(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LMSTREAM_DATA_DIR": str(tmp_path)}
    env.pop("LMSTREAM_API_KEYS", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lmstream", "serve", "--backend", "scripted", "--host", "0.0.0.0",
             "--port", str(port), "--api-key", ""],
            capture_output=True, text=True, timeout=60, env=env,
        )
    except subprocess.TimeoutExpired as exc:  # it was serving: the empty key opened it up
        raise AssertionError(f"serve kept running with an empty key on 0.0.0.0:\n{exc.stderr!r}") from None
    assert done.returncode != 0
    assert "empty key" in done.stderr
