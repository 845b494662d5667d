"""``lmstream tools``: list the server's tools, run one and watch it stream.

    lmstream tools list [--json]
    lmstream tools run NAME --arg key=value ... [--args JSON] [--json]

``run`` prints the tool's progress and chunks as lines on stderr while it runs and its
result on stdout (JSON when it is structured). A value given with ``--arg`` is read as
JSON when it is (``n=3``, ``flag=true``, ``xs=[1,2]``), else as text. Ctrl-C cancels the
run on the server; a failing tool is one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from lmstream.cli.client import DEFAULT_URL, Client, ClientError
from lmstream.cli.options import ApiKeyOption, UrlOption, fail, note

__all__ = ["parse_arguments", "register"]


def parse_arguments(pairs: list[str], raw: str | None) -> dict[str, Any]:
    """``--args JSON`` then each ``--arg key=value`` on top."""
    arguments: dict[str, Any] = {}
    if raw:
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ClientError(f"--args is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ClientError("--args must be a JSON object")
        arguments.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClientError(f"--arg takes key=value, got {pair!r}")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


def _progress(event: str, data: dict[str, Any], name: str) -> str | None:
    if event == "progress":
        percentage = data.get("percentage")
        parts = [data.get("stage") or "", f"{percentage:.0f}%" if percentage is not None else "", data.get("message") or ""]
        return f"[{name}] " + " ".join(part for part in parts if part)
    if event == "chunk":
        return f"[{name}] {str(data.get('text', '')).strip()}"
    return None


def register(app: typer.Typer) -> None:
    tools = typer.Typer(help="The server's tools: list them, run one.", no_args_is_help=True)
    app.add_typer(tools, name="tools")

    @tools.command("list")
    def list_tools(
        json_: Annotated[bool, typer.Option("--json", help="The list as JSON.")] = False,
        url: UrlOption = DEFAULT_URL,
        api_key: ApiKeyOption = None,
    ) -> None:
        """List the tools: name, description, arguments."""
        try:
            with Client(url, api_key) as client:
                data = client.tools()
        except ClientError as exc:
            raise fail(exc.message) from None
        if json_:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
            return
        for tool in data:
            arguments = ", ".join((tool.get("input_schema") or {}).get("properties", {}))
            sys.stdout.write(f"{tool['name']}({arguments})  {tool['description'].splitlines()[0] if tool['description'] else ''}\n")

    @tools.command("run")
    def run_tool(
        name: Annotated[str, typer.Argument(help="The tool (as `lmstream tools list` names it).")],
        arg: Annotated[list[str] | None, typer.Option("--arg", "-a", help="An argument, key=value (repeat).")] = None,
        args: Annotated[str | None, typer.Option("--args", help="All arguments as one JSON object.")] = None,
        json_: Annotated[bool, typer.Option("--json", help="Print the raw events, one JSON per line.")] = False,
        url: UrlOption = DEFAULT_URL,
        api_key: ApiKeyOption = None,
    ) -> None:
        """Run a tool: progress on stderr as it happens, the result on stdout."""
        run_id: str | None = None
        result: Any = None
        error: dict[str, Any] | None = None
        with Client(url, api_key) as client:
            try:
                body = {"arguments": parse_arguments(arg or [], args)}
                with client.stream(body, f"/v1/tools/{name}/stream") as events:
                    for event in events:
                        if json_:
                            sys.stdout.write(event.as_json() + "\n")
                            sys.stdout.flush()
                        if event.event == "start":
                            run_id = event.data.get("id")
                        elif event.event == "complete":
                            result = event.data.get("result")
                        elif event.event == "error":
                            error = event.data
                        elif not json_:
                            line = _progress(event.event, event.data, name)
                            if line is not None:
                                note(line)
            except ClientError as exc:
                raise fail(exc.message) from None
            except KeyboardInterrupt:
                if run_id is not None:
                    client.cancel_run(run_id)
                note("[stopped]")
                raise typer.Exit(130) from None
        if error is not None:
            raise fail(f"{name}: {error.get('message')}")
        if not json_:
            text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
            sys.stdout.write(text.rstrip("\n") + "\n")
