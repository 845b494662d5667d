"""Where tools come from: built-ins, ``lmstream.tools`` entry points, configuration."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from lmstream.errors import BadRequest, ToolNotFound
from lmstream.settings import McpServerConfig, ToolConfig
from lmstream.tools import CommandTool, FunctionTool, ToolRegistry, run_tool, tool

SAMPLE = "tests.tools.sample_tools"


def test_builtins_come_through_the_same_loader_as_plugins() -> None:
    registry = ToolRegistry.from_config([], plugins=False)
    assert [t.name for t in registry] == ["calculator", "time"]


@pytest.fixture
def plugin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution (its dist-info) declaring two ``lmstream.tools`` entry points."""
    info = tmp_path / "lmstream_plugin_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lmstream-plugin-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[lmstream.tools]\nshout = {SAMPLE}:shout\nbroken = no_such_module_anywhere:tool\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])


async def test_entry_point_plugins_are_loaded_and_a_broken_one_is_left_out(
    plugin_on_path: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="lmstream.tools"):
        registry = ToolRegistry.from_config([])
    assert "shout" in registry and "broken" not in registry
    assert "broken = no_such_module_anywhere:tool failed to load" in caplog.text
    outcome = await run_tool(registry.get("shout"), {"text": "hi"}, lambda e: None, call_id="c")
    assert outcome.result.result == "HI"


async def test_configured_functions_commands_and_overrides() -> None:
    registry = ToolRegistry.from_config(
        [
            ToolConfig(function=f"{SAMPLE}:shout"),
            ToolConfig(function=f"{SAMPLE}:count", name="counter", description="Counts.", timeout=5),
            ToolConfig(name="echo", command=[sys.executable, "-c", "print(open(0).read())"]),
        ],
        plugins=False,
    )
    assert isinstance(registry.get("shout"), FunctionTool)
    counter = registry.get("counter")
    assert (counter.description, counter.timeout) == ("Counts.", 5)
    assert isinstance(registry.get("echo"), CommandTool)
    outcome = await run_tool(counter, {"n": 1}, lambda e: None, call_id="c")
    assert (outcome.result.name, outcome.result.result) == ("counter", "counted to 1")


def test_a_configured_tool_that_does_not_load_is_an_error() -> None:
    with pytest.raises(ModuleNotFoundError):
        ToolRegistry.from_config([ToolConfig(function="no_such_module_anywhere:x")], plugins=False)
    with pytest.raises(AttributeError):
        ToolRegistry.from_config([ToolConfig(function=f"{SAMPLE}:nothing_here")], plugins=False)


def test_names_must_be_unique_and_schemas_valid() -> None:
    registry = ToolRegistry()

    @tool
    def a() -> None: ...

    registry.add(a)
    with pytest.raises(ValueError, match="already registered"):
        registry.add(a)
    with pytest.raises(ValueError, match="invalid input_schema"):
        registry.add(tool(a.function, name="b", input_schema={"type": "no-such-type"}))
    with pytest.raises(ValueError, match="without spaces"):
        registry.add(a, name="two words")


def test_validate_names_the_field_and_unknown_tools_are_404() -> None:
    registry = ToolRegistry.from_config([], plugins=False)
    registry.validate("calculator", {"expression": "1"})
    with pytest.raises(BadRequest) as caught:
        registry.validate("calculator", {"expression": ["1"]})
    assert caught.value.param == "arguments.expression"
    with pytest.raises(BadRequest, match="must be a JSON object"):
        registry.validate("calculator", "1+1")
    with pytest.raises(ToolNotFound):
        registry.get("nope")


def test_config_entries_need_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of `function` or `command`"):
        ToolConfig(function="m:f", command=["x"], name="x")
    with pytest.raises(ValidationError, match="needs a `name`"):
        ToolConfig(command=["ls"])
    with pytest.raises(ValidationError, match="exactly one of `command` or `url`"):
        McpServerConfig(name="x")
    with pytest.raises(ValidationError, match="exactly one of `command` or `url`"):
        McpServerConfig(name="x", command=["a"], url="http://h/mcp")
    with pytest.raises(ValidationError):
        McpServerConfig(name="has space", url="http://h/mcp")


def test_tools_and_mcp_servers_come_from_the_toml_file(tmp_path: Path) -> None:
    from lmstream.settings import load_settings

    config = tmp_path / "lmstream.toml"
    config.write_text(
        'tool_timeout = 5\n\n[[tools]]\nfunction = "tests.tools.sample_tools:shout"\n\n'
        '[[mcp_servers]]\nname = "files"\ncommand = ["python", "-m", "files_server"]\n\n'
        '[[mcp_servers]]\nname = "remote"\nurl = "http://127.0.0.1:9/mcp"\nheaders = { Authorization = "Bearer k" }\n'
    )
    settings = load_settings(config)
    assert settings.tool_timeout == 5
    assert settings.tools[0].function == "tests.tools.sample_tools:shout"
    assert [s.name for s in settings.mcp_servers] == ["files", "remote"]
    assert settings.mcp_servers[1].headers == {"Authorization": "Bearer k"}
