from __future__ import annotations

from pathlib import Path

import pytest

from lmstream.settings import DEFAULT_MODEL_NAME, load_settings


def test_precedence_flags_over_env_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "lmstream.toml"
    config.write_text('port = 7001\nheartbeat_interval = 3.0\ngrace_period = 4.0\napi_keys = ["from-file"]\n')
    monkeypatch.setenv("LMSTREAM_HEARTBEAT_INTERVAL", "2.0")
    monkeypatch.setenv("LMSTREAM_API_KEYS", "a,b")
    settings = load_settings(config, port=7002, grace_period=None)
    assert settings.port == 7002  # flag
    assert settings.heartbeat_interval == 2.0  # env beats the file
    assert settings.grace_period == 4.0  # file beats the default; a None flag is "not given"
    assert settings.api_keys == ["a", "b"]


def test_config_from_env_var_and_models_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'default_model = "fast"\n[[models]]\nname = "fast"\nbackend = "scripted"\naliases = ["f"]\n'
        'options = { text = "hi", tokens_per_second = 5 }\n'
    )
    monkeypatch.setenv("LMSTREAM_CONFIG", str(config))
    settings = load_settings()
    [model] = settings.resolved_models()
    assert (model.name, model.backend, model.aliases, model.options["text"]) == ("fast", "scripted", ["f"], "hi")
    assert settings.resolved_default_model() == "fast"


def test_defaults_serve_the_packaged_model() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1" and settings.port == 8000
    [model] = settings.resolved_models()
    assert model.name == DEFAULT_MODEL_NAME and model.backend == "llama_cpp" and model.path is None
    other = load_settings(model="/models/mistral-7b.Q4.gguf").resolved_models()[0]
    assert other.name == "mistral-7b.Q4" and other.path == "/models/mistral-7b.Q4.gguf"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False)])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert load_settings(host=host).is_loopback() is loopback


def test_upstream_shortcut_flags() -> None:
    [model] = load_settings(backend="ollama", upstream_url="http://127.0.0.1:11434", upstream_model="llama3.2:3b").resolved_models()
    assert (model.name, model.backend, model.url, model.upstream_model) == (
        "llama3.2:3b", "ollama", "http://127.0.0.1:11434", "llama3.2:3b"
    )
